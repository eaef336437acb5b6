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
// and key_value must be strings; other members are ignored. Strings are
// kept exactly as sent: invalid UTF-8, raw or escaped, is refused rather
// than replaced.
func decodePut(body []byte) (putRequest, error) {
	if !utf8.Valid(body) {
		return putRequest{}, kv.Invalid("invalid_utf8", "request body is not valid UTF-8")
	}
	// A map of raw members matches names exactly (a struct would also take
	// "KEY_NAME") and ignores unknown members. Unmarshal rejects trailing
	// data after the object.
	var members map[string]json.RawMessage
	if err := json.Unmarshal(body, &members); err != nil {
		var typeErr *json.UnmarshalTypeError
		if errors.As(err, &typeErr) {
			return putRequest{}, kv.Invalid("invalid_json", "request body must be a JSON object")
		}
		return putRequest{}, kv.Invalid("invalid_json", "request body is not valid JSON: %s", jsonErrorText(err))
	}
	if members == nil {
		return putRequest{}, kv.Invalid("invalid_json", "request body must be a JSON object")
	}

	rawKey, ok := members["key_name"]
	if !ok {
		return putRequest{}, kv.Invalid("missing_key", "key_name is required and must not be empty")
	}
	key, err := unquote(rawKey)
	if err != nil {
		return putRequest{}, fieldError("key_name", err)
	}
	rawValue, ok := members["key_value"]
	if !ok {
		return putRequest{}, kv.Invalid("missing_value", "key_value is required (it may be the empty string)")
	}
	value, err := unquote(rawValue)
	if err != nil {
		return putRequest{}, fieldError("key_value", err)
	}
	return putRequest{Key: key, Value: value}, nil
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
