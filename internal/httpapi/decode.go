package httpapi

import (
	"encoding/json"
	"errors"
	"mime"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/kvfleet/kvfleet/internal/kv"
)

// putRequest is the body of PUT /.
type putRequest struct {
	Key   string
	Value string
}

// errNotString is returned by unquote for a JSON value that is not a string.
var errNotString = errors.New("not a JSON string")

// errLoneSurrogate is returned by unquote for a \uD800-\uDFFF escape that is
// not half of a pair: it encodes no character, and encoding/json would
// silently turn it into U+FFFD, changing what the client sent.
var errLoneSurrogate = errors.New("unpaired UTF-16 surrogate escape")

// decodePut parses a PUT body. The body must be one JSON object; key_name
// and key_value must be strings, each given once; other members are
// ignored. Strings are kept exactly as sent: invalid UTF-8, raw or escaped,
// is refused rather than replaced.
//
// The body is checked and then walked in place: only key_name and
// key_value are copied out, so an unknown member of megabytes costs nothing
// beyond the body already read (a map of raw members, or a struct, would
// copy it).
func decodePut(body []byte) (putRequest, error) {
	if !utf8.Valid(body) {
		return putRequest{}, kv.Invalid("invalid_utf8", "request body is not valid UTF-8")
	}
	if !json.Valid(body) {
		// Unmarshalling into an empty struct only describes the syntax error.
		err := json.Unmarshal(body, &struct{}{})
		return putRequest{}, kv.Invalid("invalid_json", "request body is not valid JSON: %s", jsonErrorText(err))
	}
	members, ok := objectMembers(body)
	if !ok {
		return putRequest{}, kv.Invalid("invalid_json", "request body must be a JSON object")
	}
	var rawKey, rawValue []byte
	for _, m := range members {
		var dst *[]byte
		switch {
		case memberNamed(m.name, "key_name"):
			dst = &rawKey
		case memberNamed(m.name, "key_value"):
			dst = &rawValue
		default:
			continue
		}
		if *dst != nil {
			// A proxy or a logger that reads the first and the API that
			// reads the last would disagree on what was written.
			return putRequest{}, kv.Invalid("duplicate_member", "%s is given more than once", nameOf(m.name))
		}
		*dst = m.value
	}
	if rawKey == nil {
		return putRequest{}, kv.Invalid("missing_key", "key_name is required and must not be empty")
	}
	key, err := unquote(rawKey)
	if err != nil {
		return putRequest{}, fieldError("key_name", err)
	}
	if rawValue == nil {
		return putRequest{}, kv.Invalid("missing_value", "key_value is required (it may be the empty string)")
	}
	value, err := unquote(rawValue)
	if err != nil {
		return putRequest{}, fieldError("key_value", err)
	}
	return putRequest{Key: key, Value: value}, nil
}

// member is one member of a JSON object, as spans of the body: its name
// with the quotes and its value as written.
type member struct{ name, value []byte }

// objectMembers lists the members of the top-level object of body, which
// must be valid JSON (json.Valid); ok is false when it is not an object.
// The spans share body's memory.
func objectMembers(body []byte) (members []member, ok bool) {
	i := skipSpace(body, 0)
	if i == len(body) || body[i] != '{' {
		return nil, false
	}
	i = skipSpace(body, i+1)
	for i < len(body) && body[i] != '}' {
		end := stringEnd(body, i)
		name := body[i:end]
		i = skipSpace(body, skipSpace(body, end)+1) // past the ':'
		end = valueEnd(body, i)
		members = append(members, member{name: name, value: body[i:end]})
		i = skipSpace(body, end)
		if i < len(body) && body[i] == ',' {
			i = skipSpace(body, i+1)
		}
	}
	return members, true
}

func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// stringEnd returns the index just past the string literal that starts at
// b[i] (a '"').
func stringEnd(b []byte, i int) int {
	for i++; i < len(b); i++ {
		switch b[i] {
		case '\\':
			i++
		case '"':
			return i + 1
		}
	}
	return i
}

// valueEnd returns the index just past the JSON value that starts at b[i].
func valueEnd(b []byte, i int) int {
	switch b[i] {
	case '"':
		return stringEnd(b, i)
	case '{', '[':
		depth := 0
		for ; i < len(b); i++ {
			switch b[i] {
			case '"':
				i = stringEnd(b, i) - 1
			case '{', '[':
				depth++
			case '}', ']':
				if depth--; depth == 0 {
					return i + 1
				}
			}
		}
		return i
	}
	for i < len(b) && !strings.ContainsRune(",}] \t\r\n", rune(b[i])) {
		i++
	}
	return i
}

// memberNamed reports whether the quoted member name raw spells name,
// escapes decoded ("key\u005fname" is key_name); names match exactly, case
// included.
func memberNamed(raw []byte, name string) bool {
	if !containsByte(raw, '\\') {
		return len(raw) == len(name)+2 && string(raw[1:len(raw)-1]) == name
	}
	decoded, err := unquote(raw)
	return err == nil && decoded == name
}

func nameOf(raw []byte) string {
	if memberNamed(raw, "key_name") {
		return "key_name"
	}
	return "key_value"
}

func fieldError(field string, err error) error {
	if errors.Is(err, errLoneSurrogate) {
		return kv.Invalid("invalid_utf8", "%s contains an unpaired surrogate escape, which is not valid UTF-8", field)
	}
	return kv.Invalid("invalid_"+strings.TrimPrefix(field, "key_"), "%s must be a JSON string", field)
}

// jsonErrorText keeps the parser's description of a syntax error but never
// echoes the client's data back.
func jsonErrorText(err error) string {
	var syntaxErr *json.SyntaxError
	if errors.As(err, &syntaxErr) {
		return syntaxErr.Error() + " (at byte " + strconv.FormatInt(syntaxErr.Offset, 10) + ")"
	}
	return "unexpected end of input"
}

// unquote decodes a JSON string literal that encoding/json has already
// checked for syntax. Unlike encoding/json it refuses unpaired surrogate
// escapes instead of replacing them.
func unquote(raw json.RawMessage) (string, error) {
	if len(raw) < 2 || raw[0] != '"' || raw[len(raw)-1] != '"' {
		return "", errNotString
	}
	s := raw[1 : len(raw)-1]
	if !containsByte(s, '\\') {
		return string(s), nil
	}
	out := make([]byte, 0, len(s))
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c != '\\' {
			out = append(out, c)
			continue
		}
		i++
		if i == len(s) {
			return "", errNotString
		}
		switch s[i] {
		case '"', '\\', '/':
			out = append(out, s[i])
		case 'b':
			out = append(out, '\b')
		case 'f':
			out = append(out, '\f')
		case 'n':
			out = append(out, '\n')
		case 'r':
			out = append(out, '\r')
		case 't':
			out = append(out, '\t')
		case 'u':
			r, ok := hex4(s[i+1:])
			if !ok {
				return "", errNotString
			}
			i += 4
			if utf16.IsSurrogate(r) {
				// Only a high surrogate followed by an escaped low one is a character.
				if r >= 0xDC00 || i+6 >= len(s) || s[i+1] != '\\' || s[i+2] != 'u' {
					return "", errLoneSurrogate
				}
				low, ok := hex4(s[i+3:])
				if !ok || low < 0xDC00 || low > 0xDFFF {
					return "", errLoneSurrogate
				}
				r = utf16.DecodeRune(r, low)
				i += 6
			}
			out = utf8.AppendRune(out, r)
		default:
			return "", errNotString
		}
	}
	return string(out), nil
}

func hex4(b []byte) (rune, bool) {
	if len(b) < 4 {
		return 0, false
	}
	var r rune
	for _, c := range b[:4] {
		r <<= 4
		switch {
		case '0' <= c && c <= '9':
			r |= rune(c - '0')
		case 'a' <= c && c <= 'f':
			r |= rune(c - 'a' + 10)
		case 'A' <= c && c <= 'F':
			r |= rune(c - 'A' + 10)
		default:
			return 0, false
		}
	}
	return r, true
}

func containsByte(b []byte, c byte) bool {
	for _, x := range b {
		if x == c {
			return true
		}
	}
	return false
}

// checkContentType accepts application/json with an optional UTF-8 charset.
func checkContentType(header string) error {
	if header == "" {
		return errUnsupportedMedia("Content-Type is missing; send application/json")
	}
	media, params, err := mime.ParseMediaType(header)
	if err != nil || media != "application/json" {
		return errUnsupportedMedia("Content-Type must be application/json")
	}
	if cs, ok := params["charset"]; ok && !strings.EqualFold(cs, "utf-8") {
		return errUnsupportedMedia("the only supported charset is utf-8")
	}
	return nil
}

// queryKey reads the key of a GET or DELETE from the query string, which is
// decoded exactly once. Both "key" and "key_name" are accepted; naming the
// key twice with different values is an error rather than a guess.
func queryKey(r *http.Request) (string, error) {
	values, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		return "", kv.Invalid("invalid_query", "query string is malformed; percent-encode the key (e.g. with encodeURIComponent)")
	}
	var key string
	found := false
	for _, name := range [...]string{"key", "key_name"} {
		for _, v := range values[name] {
			if found && v != key {
				return "", kv.Invalid("ambiguous_key", "the key is given more than once with different values")
			}
			key, found = v, true
		}
	}
	if !found || key == "" {
		return "", kv.Invalid("missing_key", "query parameter key (or key_name) is required and must not be empty")
	}
	return key, nil
}
