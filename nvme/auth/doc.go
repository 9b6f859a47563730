// Package auth implements NVMe in-band authentication, DH-HMAC-CHAP (NVMe
// Base 2.x §8.3.4 / TP 8006), as Linux does it (drivers/nvme/common/auth.c,
// host/auth.c, target/fabrics-cmd-auth.c): secrets in the DHHC-1 text form
// nvme-cli writes, the key transform, SHA-256/384/512 HMACs, the RFC 7919
// FFDHE groups for the augmented challenge, the message codecs, and the host
// and controller sides of the exchange.
//
// The package does no I/O of its own: Host runs the host side over a
// Transport (AUTH_Send / AUTH_Receive on one queue), Controller is the
// per-queue state machine a target drives from its AUTH_Send and
// AUTH_Receive handlers.
//
// Secrets never appear in errors or String output; derived keys, session
// keys and DH private exponents are zeroed when a run ends. Modular
// exponentiation uses filippo.io/bigmod, whose Exp takes time that depends
// only on the lengths of its operands, not their values.
package auth
