package jsonenc

import (
	"encoding/json"
	"testing"
)

// The hand-written JSON string encoder writes what encoding/json writes, for every kind of
// character a message body or attribute may hold (and for bytes that are not UTF-8).
func TestAppendStringIsEncodingJSONs(t *testing.T) {
	for _, s := range []string{
		"", "hello", `quote " and backslash \`, "tab\tnew\nline\rcr", "\x00\x01\x1f\x7f", "\b\f",
		"<tag> & amp", "é ü 日本 🎉", "line\u2028sep\u2029", "bad \xff\xfe utf8 \xc3", "\xed\xa0\x80 surrogate",
		string([]byte{0xe2, 0x80}), "\u00a0\ufeff",
	} {
		want, err := json.Marshal(s)
		if err != nil {
			t.Fatal(err)
		}
		if got := AppendString(nil, s); string(got) != string(want) {
			t.Errorf("%q: got %s, encoding/json %s", s, got, want)
		}
	}
}

func FuzzAppendStringIsEncodingJSONs(f *testing.F) {
	f.Add("a\"b\\c\x00<\u2028\xff")
	f.Fuzz(func(t *testing.T, s string) {
		want, _ := json.Marshal(s)
		if got := AppendString(nil, s); string(got) != string(want) {
			t.Errorf("%q: got %s, encoding/json %s", s, got, want)
		}
	})
}
