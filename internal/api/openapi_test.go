package api

import (
	"encoding/json"
	"reflect"
	"slices"
	"strings"
	"testing"
)

// TestOpenAPI: the description parses as JSON, says OpenAPI 3.1.0,
// describes every route with its method, and every schema's properties
// are exactly the JSON fields of the Go type of that name, with the
// required ones required.
func TestOpenAPI(t *testing.T) {
	b, err := OpenAPI()
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		OpenAPI    string                               `json:"openapi"`
		Paths      map[string]map[string]map[string]any `json:"paths"`
		Components struct {
			Schemas map[string]struct {
				Type       string         `json:"type"`
				Properties map[string]any `json:"properties"`
				Required   []string       `json:"required"`
			} `json:"schemas"`
		} `json:"components"`
	}
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatalf("the description is not JSON: %v", err)
	}
	if doc.OpenAPI != "3.1.0" {
		t.Errorf("openapi = %q, want 3.1.0", doc.OpenAPI)
	}
	n := 0
	for _, rt := range Routes() {
		op, ok := doc.Paths[rt.Path][strings.ToLower(rt.Method)]
		if !ok {
			t.Errorf("%s %s is not described", rt.Method, rt.Path)
			continue
		}
		n++
		if _, ok := op["responses"]; !ok {
			t.Errorf("%s %s has no responses", rt.Method, rt.Path)
		}
		if !strings.HasPrefix(rt.Path, "/api/v1/") {
			t.Errorf("%s %s is outside /api/v1", rt.Method, rt.Path)
		}
	}
	described := 0
	for _, ops := range doc.Paths {
		described += len(ops)
	}
	if described != n {
		t.Errorf("%d operations described, %d routes", described, n)
	}

	types := map[string]reflect.Type{}
	var walk func(reflect.Type)
	walk = func(t reflect.Type) {
		switch t.Kind() {
		case reflect.Pointer, reflect.Slice, reflect.Map:
			walk(t.Elem())
		case reflect.Struct:
			if t == timeType || types[t.Name()] != nil {
				return
			}
			types[t.Name()] = t
			for _, f := range jsonFields(t) {
				walk(f.Type)
			}
		}
	}
	walk(reflect.TypeOf(Error{}))
	for _, rt := range Routes() {
		for _, v := range []any{rt.Request, rt.Response} {
			if v != nil {
				walk(reflect.TypeOf(v))
			}
		}
	}
	for name, typ := range types {
		s, ok := doc.Components.Schemas[name]
		if !ok {
			t.Errorf("no schema for %s", name)
			continue
		}
		var props, required []string
		for _, f := range jsonFields(typ) {
			props = append(props, f.Name)
			if !f.Optional {
				required = append(required, f.Name)
			}
		}
		var got []string
		for p := range s.Properties {
			got = append(got, p)
		}
		slices.Sort(props)
		slices.Sort(got)
		if s.Type != "object" || !slices.Equal(got, props) {
			t.Errorf("schema %s: %s with properties %q, want an object with %q", name, s.Type, got, props)
		}
		if !slices.Equal(s.Required, required) {
			t.Errorf("schema %s requires %q, want %q", name, s.Required, required)
		}
	}
	if len(doc.Components.Schemas) != len(types) {
		t.Errorf("%d schemas described, %d types reachable from the routes", len(doc.Components.Schemas), len(types))
	}
}
