package api

import (
	"encoding/json"
	"fmt"
	"net/http"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// OpenAPIVersion is the version of the OpenAPI specification OpenAPI
// writes.
const OpenAPIVersion = "3.1.0"

// OpenAPI returns the OpenAPI 3.1 description of the API (JSON), generated
// from Routes and the Go types, so it cannot drift from them: every
// struct's properties are its JSON fields; a field without omitempty or
// omitzero is required, and a slice, map or pointer without them may be
// null.
func OpenAPI() ([]byte, error) {
	g := &gen{schemas: map[string]any{}}
	paths := map[string]map[string]any{}
	for _, rt := range Routes() {
		op := map[string]any{"summary": rt.Summary, "operationId": operationID(rt)}
		var params []any
		for _, m := range pathParam.FindAllStringSubmatch(rt.Path, -1) {
			params = append(params, map[string]any{"name": m[1], "in": "path", "required": true, "schema": map[string]any{"type": "string"}})
		}
		for _, q := range rt.Query {
			params = append(params, map[string]any{"name": q.Name, "in": "query", "required": q.Required,
				"description": q.Description, "schema": map[string]any{"type": q.Type}})
		}
		if params != nil {
			op["parameters"] = params
		}
		if rt.RequestMedia != "" {
			op["requestBody"] = map[string]any{"required": true, "content": map[string]any{
				rt.RequestMedia: map[string]any{"schema": map[string]any{"type": "string", "contentMediaType": rt.RequestMedia}}}}
		}
		if rt.Request != nil {
			op["requestBody"] = map[string]any{"required": true, "content": map[string]any{
				"application/json": map[string]any{"schema": g.schema(reflect.TypeOf(rt.Request))}}}
		}
		ok := map[string]any{"description": http.StatusText(rt.Status)}
		switch {
		case rt.Stream == "text/event-stream":
			ok["content"] = map[string]any{rt.Stream: map[string]any{"schema": map[string]any{"type": "string"}}}
		case rt.Stream != "":
			ok["description"] = "a stream of values, one JSON document a line"
			ok["content"] = map[string]any{rt.Stream: map[string]any{"schema": g.schema(reflect.TypeOf(rt.Response))}}
		case rt.Response != nil:
			ok["content"] = map[string]any{"application/json": map[string]any{"schema": g.schema(reflect.TypeOf(rt.Response))}}
		}
		responses := map[string]any{strconv.Itoa(rt.Status): ok}
		if rt.Method == http.MethodPut && rt.Path == "/api/v1/tasks/{name}" {
			responses["201"] = map[string]any{"description": "Created", "content": ok["content"]}
		}
		responses["default"] = map[string]any{"description": "an error", "content": map[string]any{
			"application/json": map[string]any{"schema": g.schema(reflect.TypeOf(Error{}))}}}
		op["responses"] = responses
		if rt.Public {
			op["security"] = []any{}
		}
		if paths[rt.Path] == nil {
			paths[rt.Path] = map[string]any{}
		}
		paths[rt.Path][strings.ToLower(rt.Method)] = op
	}
	doc := map[string]any{
		"openapi": OpenAPIVersion,
		"info": map[string]any{
			"title":       "refit API",
			"version":     "v1",
			"description": "refit's HTTP API. Every endpoint but this description takes Authorization: Bearer <token>. Generated from internal/api.",
		},
		"paths":    paths,
		"security": []any{map[string]any{"bearer": []any{}}},
		"components": map[string]any{
			"schemas":         g.schemas,
			"securitySchemes": map[string]any{"bearer": map[string]any{"type": "http", "scheme": "bearer"}},
		},
	}
	b, err := json.MarshalIndent(doc, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("encoding the OpenAPI description: %w", err)
	}
	return append(b, '\n'), nil
}

var pathParam = regexp.MustCompile(`\{([A-Za-z0-9_]+)\}`)

// operationID names an operation from its method and path:
// "get /api/v1/tasks/{name}" is "get_tasks_name".
func operationID(rt Route) string {
	p := strings.TrimPrefix(rt.Path, "/api/v1/")
	p = strings.NewReplacer("/", "_", "{", "", "}", "", ":", "_", ".", "_").Replace(p)
	return strings.ToLower(rt.Method) + "_" + p
}

// gen builds JSON Schemas for Go types, collecting named structs under
// components/schemas.
type gen struct {
	schemas map[string]any
}

var (
	timeType = reflect.TypeFor[time.Time]()
	rawType  = reflect.TypeFor[json.RawMessage]()

	commitType = reflect.TypeFor[CommitTrigger]()
)

func (g *gen) schema(t reflect.Type) map[string]any {
	switch {
	case t == timeType:
		return map[string]any{"type": "string", "format": "date-time"}
	case t == rawType:
		return map[string]any{} // any JSON value
	case t == commitType: // a boolean or the object of filters
		if _, ok := g.schemas[t.Name()]; !ok {
			g.schemas[t.Name()] = g.object(t)
		}
		return map[string]any{"oneOf": []any{map[string]any{"type": "boolean"},
			map[string]any{"$ref": "#/components/schemas/" + t.Name()}}}
	}
	switch t.Kind() {
	case reflect.String:
		return map[string]any{"type": "string"}
	case reflect.Bool:
		return map[string]any{"type": "boolean"}
	case reflect.Int, reflect.Int64, reflect.Int32:
		return map[string]any{"type": "integer"}
	case reflect.Pointer:
		return g.schema(t.Elem())
	case reflect.Slice:
		return map[string]any{"type": "array", "items": g.schema(t.Elem())}
	case reflect.Map:
		if t.Elem().Kind() == reflect.Interface {
			return map[string]any{"type": "object"}
		}
		return map[string]any{"type": "object", "additionalProperties": g.schema(t.Elem())}
	case reflect.Struct:
		name := t.Name()
		if _, ok := g.schemas[name]; !ok {
			g.schemas[name] = nil // placeholder: recursive types (Cause)
			g.schemas[name] = g.object(t)
		}
		return map[string]any{"$ref": "#/components/schemas/" + name}
	}
	panic(fmt.Sprintf("api: no JSON Schema for %s", t))
}

// object is the schema of a struct: its JSON fields as properties.
func (g *gen) object(t reflect.Type) map[string]any {
	props := map[string]any{}
	required := []string{}
	for _, f := range jsonFields(t) {
		s := g.schema(f.Type)
		if !f.Optional {
			required = append(required, f.Name)
			if k := f.Type.Kind(); (k == reflect.Slice || k == reflect.Map || k == reflect.Pointer) && f.Type != rawType {
				s = map[string]any{"oneOf": []any{s, map[string]any{"type": "null"}}}
			}
		}
		props[f.Name] = s
	}
	return map[string]any{"type": "object", "properties": props, "required": required}
}

// jsonField is a struct field as encoding/json writes it.
type jsonField struct {
	Name     string       // the JSON name
	Optional bool         // omitempty or omitzero: may be absent
	Type     reflect.Type // the Go type
}

// jsonFields lists the fields encoding/json writes for struct type t, in
// order (the api types embed nothing, so there is nothing to flatten).
func jsonFields(t reflect.Type) []jsonField {
	var out []jsonField
	for f := range t.Fields() {
		tag := f.Tag.Get("json")
		if !f.IsExported() || tag == "-" {
			continue
		}
		name, opts, _ := strings.Cut(tag, ",")
		if name == "" {
			name = f.Name
		}
		optional := false
		for o := range strings.SplitSeq(opts, ",") {
			optional = optional || o == "omitempty" || o == "omitzero"
		}
		out = append(out, jsonField{Name: name, Optional: optional, Type: f.Type})
	}
	return out
}
