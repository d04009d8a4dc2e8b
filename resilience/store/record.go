package store

import (
	"bytes"
	"encoding/json"
	"errors"
	"reflect"
	"strings"
)

// recordFields are the JSON names of Record's fields, which its extra
// fields may not take.
var recordFields = func() map[string]bool {
	m := map[string]bool{}
	t := reflect.TypeOf(recordJSON{})
	for i := 0; i < t.NumField(); i++ {
		if name, _, _ := strings.Cut(t.Field(i).Tag.Get("json"), ","); name != "" {
			m[name] = true
		}
	}
	return m
}()

// recordJSON is Record without its methods, for encoding/json.
type recordJSON Record

// MarshalJSON writes the record with the fields it does not know, as it
// read them, so that an older version saving a newer version's record
// loses nothing.
func (r Record) MarshalJSON() ([]byte, error) {
	known, err := json.Marshal(recordJSON(r))
	if err != nil || len(r.extra) == 0 {
		return known, err
	}
	extra, err := json.Marshal(r.extra)
	if err != nil {
		return nil, err
	}
	// Both are objects: join {known...} and {extra...}.
	out := append(known[:len(known)-1:len(known)-1], ',')
	return append(out, extra[1:]...), nil
}

// UnmarshalJSON reads a record, keeping the fields it does not know.
func (r *Record) UnmarshalJSON(data []byte) error {
	var known recordJSON
	if err := json.Unmarshal(data, &known); err != nil {
		return err
	}
	var all map[string]json.RawMessage
	if err := json.Unmarshal(data, &all); err != nil {
		return err
	}
	for name := range all {
		if recordFields[name] {
			delete(all, name)
		}
	}
	known.extra = nil
	if len(all) > 0 {
		known.extra = all
	}
	*r = Record(known)
	return nil
}

// DecodeRecord parses a state file's content. Fields it does not know (a
// newer version's) are kept for the next save, never a reason to reject
// the record: a fleet upgrades one machine at a time.
func DecodeRecord(data []byte) (Record, error) {
	var r Record
	dec := json.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&r); err != nil {
		return Record{}, err
	}
	if dec.More() {
		return Record{}, errors.New("trailing data after the state object")
	}
	if r.ConsecutiveFailures < 0 {
		return Record{}, errors.New("negative failure count")
	}
	if r.State == StateOpen && r.RetryAt == nil {
		return Record{}, errors.New("open state without retry_at")
	}
	for node, n := range r.NodeFailures {
		if n < 0 {
			return Record{}, errors.New("negative failure count of node " + node)
		}
	}
	return r, nil
}
