package nvmecli

import (
	"strconv"
	"strings"
)

// nvme-cli prints JSON through json-c with JSON_C_TO_STRING_PRETTY: two-space indent,
// `"key":value` with no space, '/' escaped as `\/`, an empty array as "[" newline "]" at the
// parent's indent, and a newline after the document. encoding/json cannot produce that, so
// this file holds a tiny ordered document model that can.

// jvalue is one of: string, int64, uint64, jobject, jarray.
type jvalue any

type jmember struct {
	key string
	val jvalue
}

type jobject []jmember

type jarray []jvalue

func (o *jobject) add(key string, v jvalue) { *o = append(*o, jmember{key, v}) }

// writeJSON appends the json-c pretty form of v followed by "\n".
func writeJSON(b *strings.Builder, v jvalue) {
	writeJValue(b, v, 0)
	b.WriteByte('\n')
}

func writeJValue(b *strings.Builder, v jvalue, indent int) {
	switch x := v.(type) {
	case string:
		writeJString(b, x)
	case int64:
		b.WriteString(strconv.FormatInt(x, 10))
	case uint64:
		b.WriteString(strconv.FormatUint(x, 10))
	case jobject:
		b.WriteByte('{')
		for i, m := range x {
			if i > 0 {
				b.WriteByte(',')
			}
			b.WriteByte('\n')
			writeIndent(b, indent+2)
			writeJString(b, m.key)
			b.WriteByte(':')
			writeJValue(b, m.val, indent+2)
		}
		b.WriteByte('\n')
		writeIndent(b, indent)
		b.WriteByte('}')
	case jarray:
		b.WriteByte('[')
		for i, e := range x {
			if i > 0 {
				b.WriteByte(',')
			}
			b.WriteByte('\n')
			writeIndent(b, indent+2)
			writeJValue(b, e, indent+2)
		}
		b.WriteByte('\n')
		writeIndent(b, indent)
		b.WriteByte(']')
	default:
		b.WriteString("null")
	}
}

func writeIndent(b *strings.Builder, n int) {
	for i := 0; i < n; i++ {
		b.WriteByte(' ')
	}
}

// writeJString escapes like json-c's json_escape_str without NOSLASHESCAPE.
func writeJString(b *strings.Builder, s string) {
	const hex = "0123456789abcdef"
	b.WriteByte('"')
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch c {
		case '"':
			b.WriteString(`\"`)
		case '\\':
			b.WriteString(`\\`)
		case '/':
			b.WriteString(`\/`)
		case '\b':
			b.WriteString(`\b`)
		case '\f':
			b.WriteString(`\f`)
		case '\n':
			b.WriteString(`\n`)
		case '\r':
			b.WriteString(`\r`)
		case '\t':
			b.WriteString(`\t`)
		default:
			if c < 0x20 {
				b.WriteString(`\u00`)
				b.WriteByte(hex[c>>4])
				b.WriteByte(hex[c&0xF])
			} else {
				b.WriteByte(c)
			}
		}
	}
	b.WriteByte('"')
}
