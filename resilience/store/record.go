package store

import (
	"bytes"
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"sync"
)

// recordFields are the JSON names of Record's fields, which its extra
// fields may not take. Made when first needed, not at every start.
var recordFields = sync.OnceValue(func() map[string]bool {
	m := map[string]bool{}
	t := reflect.TypeOf(recordJSON{})
	for i := 0; i < t.NumField(); i++ {
		if name, _, _ := strings.Cut(t.Field(i).Tag.Get("json"), ","); name != "" {
			m[name] = true
		}
	}
	return m
})

// recordJSON is Record without its methods, for encoding/json.
type recordJSON Record

// MarshalJSON writes the record with the fields it does not know, as it
// read them, so that an older version saving a newer version's record
// loses nothing.
func (r Record) MarshalJSON() ([]byte, error) {
	extraFields := r.extra
	if r.State == StateUnknown {
		// Written back under its own name, which this version keeps.
		r.State = StateClosed
		extraFields = map[string]json.RawMessage{}
		for k, v := range r.extra {
			extraFields[k] = v
		}
		name, _ := json.Marshal(r.rawState)
		extraFields["state"] = name
	}
	known, err := json.Marshal(recordJSON(r))
	if err != nil || len(extraFields) == 0 {
		return known, err
	}
	if _, ok := extraFields["state"]; ok {
		// Drop the known "state" the struct wrote: the extra one wins.
		var m map[string]json.RawMessage
		if err := json.Unmarshal(known, &m); err != nil {
			return nil, err
		}
		for k, v := range extraFields {
			m[k] = v
		}
		return json.Marshal(m)
	}
	extra, err := json.Marshal(extraFields)
	if err != nil {
		return nil, err
	}
	// Both are objects: join {known...} and {extra...}.
	out := append(known[:len(known)-1:len(known)-1], ',')
	return append(out, extra[1:]...), nil
}

// UnmarshalJSON reads a record, keeping the fields it does not know.
func (r *Record) UnmarshalJSON(data []byte) error {
	var all map[string]json.RawMessage
	if err := json.Unmarshal(data, &all); err != nil {
		return err
	}
	var rawState string
	if v, ok := all["state"]; ok {
		var name string
		var st State
		if json.Unmarshal(v, &name) == nil && st.UnmarshalText([]byte(name)) != nil && name != "" {
			// A newer version's state: kept by name, read as unknown.
			rawState = name
			data = withField(all, "state", []byte(`"closed"`))
		}
	}
	var known recordJSON
	if err := json.Unmarshal(data, &known); err != nil {
		return err
	}
	for name := range all {
		if recordFields()[name] {
			delete(all, name)
		}
	}
	known.extra = nil
	if len(all) > 0 {
		known.extra = all
	}
	if rawState != "" {
		known.State, known.rawState = StateUnknown, rawState
	}
	*r = Record(known)
	return nil
}

// withField is the JSON object of all with name set to value.
func withField(all map[string]json.RawMessage, name string, value json.RawMessage) []byte {
	m := make(map[string]json.RawMessage, len(all))
	for k, v := range all {
		m[k] = v
	}
	m[name] = value
	data, _ := json.Marshal(m)
	return data
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
