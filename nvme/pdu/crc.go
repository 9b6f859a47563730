package pdu

import "hash/crc32"

// crc32Update extends a CRC32C over b. The state is the finalised CRC of
// the bytes so far (crc32.Update's convention), so the value after the last
// chunk is the digest.
func crc32Update(crc uint32, b []byte) uint32 { return crc32.Update(crc, castagnoli, b) }
