package jsonenc

import (
	"encoding/json"
	"strings"
	"testing"
	"unicode/utf8"
)

// validCases are documents at every edge of the grammar, valid and not.
var validCases = []string{
	``, ` `, `0`, `-0`, `01`, `-`, `1.`, `1.5`, `.5`, `1e5`, `1E+5`, `1e-5`, `1e`, `1e+`, `-01`, `2.0e0`,
	`true`, `tru`, `truex`, `false`, `null`, `nul`, `NaN`, `Infinity`,
	`""`, `"`, `"a`, `"\"\\\/\b\f\n\r\t"`, `"\u00e9\uD83D\uDE00"`, `"\u12"`, `"\u12G4"`, `"\x"`, `"\`,
	"\"tab\tinside\"", "\"nul\x00\"", "\"del\x7f\"", `"é日本🎉"`, "\"\xff\"", "\"\xc3\"", "\"\xed\xa0\x80\"", "\xef\xbb\xbf{}",
	`{}`, `{ }`, `[]`, `[ ]`, `{"a":1}`, `{"a" : 1 , "b":[1,2,{"c":null}]}`, `{"a":1,}`, `[1,]`, `[,1]`, `{,}`,
	`{"a"}`, `{"a":}`, `{a:1}`, `{1:1}`, `[1 2]`, `{"a":1 "b":2}`, `[}`, `{]`, `[[[]]]`, `[[[]]`, `[]]`,
	`{} {}`, `1 2`, " \t\r\n[1]\n ", "[1]\v", `{"pad":"` + strings.Repeat("x", 1000) + `"}`,
	strings.Repeat("[", maxDepth) + strings.Repeat("]", maxDepth),
	strings.Repeat("[", maxDepth+1) + strings.Repeat("]", maxDepth+1),
	strings.Repeat(`{"a":`, maxDepth) + "1" + strings.Repeat("}", maxDepth),
	strings.Repeat(`{"a":`, maxDepth+1) + "1" + strings.Repeat("}", maxDepth+1),
}

// Valid answers as encoding/json's Valid and utf8.Valid together.
func TestValidIsEncodingJSONsAndUTF8(t *testing.T) {
	for _, s := range validCases {
		want := json.Valid([]byte(s)) && utf8.ValidString(s)
		if got := Valid([]byte(s)); got != want {
			t.Errorf("%.60q: got %v, encoding/json and utf8 %v", s, got, want)
		}
	}
}

func FuzzValidIsEncodingJSONsAndUTF8(f *testing.F) {
	for _, s := range validCases {
		if len(s) < 200 {
			f.Add([]byte(s))
		}
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		want := json.Valid(b) && utf8.Valid(b)
		if got := Valid(b); got != want {
			t.Errorf("%q: got %v, encoding/json and utf8 %v", b, got, want)
		}
	})
}

// BenchmarkValid compares Valid with what it replaces, on a 1 KiB message body.
func BenchmarkValid(b *testing.B) {
	body := []byte(`{"pad":"` + strings.Repeat("x", 1014) + `"}`)
	b.Run("jsonenc.Valid", func(b *testing.B) {
		b.SetBytes(int64(len(body)))
		for b.Loop() {
			if !Valid(body) {
				b.Fatal("invalid")
			}
		}
	})
	b.Run("json.Valid+utf8.Valid", func(b *testing.B) {
		b.SetBytes(int64(len(body)))
		for b.Loop() {
			if !json.Valid(body) || !utf8.Valid(body) {
				b.Fatal("invalid")
			}
		}
	})
}
