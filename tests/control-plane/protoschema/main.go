// Command protoschema prints the protobuf form of every built-in Kubernetes kind as zen-sim
// reads it (src/sim/protobuf/schema.json): for each Go type of k8s.io/api, apimachinery's meta
// types and apiextensions' CRDs at the version of go.mod, its fields' protobuf tags, JSON names
// and the two facts JSON needs that the .proto files do not carry: whether the Go field is a
// pointer and whether its JSON tag says omitempty.
//
//	go run . > ../../../src/sim/protobuf/schema.json
package main

import (
	"encoding/json"
	"fmt"
	"os"
	"reflect"
	"runtime/debug"
	"sort"
	"strconv"
	"strings"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes/scheme"
)

// Types whose protobuf and JSON forms are written by hand in Go, by the name zen-sim knows them.
var special = map[reflect.Type]string{
	reflect.TypeFor[metav1.Time]():                                  "time",
	reflect.TypeFor[metav1.MicroTime]():                             "microtime",
	reflect.TypeFor[metav1.Duration]():                              "duration",
	reflect.TypeFor[resource.Quantity]():                            "quantity",
	reflect.TypeFor[intstr.IntOrString]():                           "intstr",
	reflect.TypeFor[runtime.RawExtension]():                         "raw",
	reflect.TypeFor[metav1.FieldsV1]():                              "raw",
	reflect.TypeFor[apiextensionsv1.JSON]():                         "raw",
	reflect.TypeFor[apiextensionsv1.JSONSchemaPropsOrArray]():       "schema-or-array",
	reflect.TypeFor[apiextensionsv1.JSONSchemaPropsOrBool]():        "schema-or-bool",
	reflect.TypeFor[apiextensionsv1.JSONSchemaPropsOrStringArray](): "schema-or-strings",
}

// A field: [protobuf tag, JSON name, type, flags]. The type is a scalar (string, bool,
// int32, int64, uint32, uint64, float64, bytes), a special type above, or a message's name.
// Flags: r repeated, m map (string keys, the type is the value's), p Go pointer, o omitempty,
// z omitzero, i inlined into the parent in JSON, w a named []string wrapped in a message
// (items = 1).
type field [4]any

type schema struct {
	Kubernetes string
	Kinds      map[string]string
	Messages   map[string][]field
}

func main() {
	out := schema{Kinds: map[string]string{}, Messages: map[string][]field{}}
	if info, ok := debug.ReadBuildInfo(); ok {
		for _, module := range info.Deps {
			if module.Path == "k8s.io/api" {
				out.Kubernetes = module.Version
				if module.Replace != nil {
					out.Kubernetes = module.Replace.Version
				}
			}
		}
	}
	all := runtime.NewScheme()
	for _, add := range []func(*runtime.Scheme) error{scheme.AddToScheme, apiextensionsv1.AddToScheme} {
		if err := add(all); err != nil {
			fail("%v", err)
		}
	}
	for gvk, goType := range all.AllKnownTypes() {
		if gvk.Version == runtime.APIVersionInternal || !hasProtobuf(goType) {
			continue
		}
		name := visit(goType, out.Messages)
		out.Kinds[gvk.GroupVersion().String()+"/"+gvk.Kind] = name
	}
	// One kind and one message a line, in order, so that a new release reads as a small diff.
	fmt.Printf("{\n\"k8s.io/api\": %s,\n\"kinds\": {\n", encode(out.Kubernetes))
	printSorted(out.Kinds)
	fmt.Print("},\n\"messages\": {\n")
	printSorted(out.Messages)
	fmt.Print("}\n}\n")
}

func printSorted[V any](entries map[string]V) {
	keys := make([]string, 0, len(entries))
	for key := range entries {
		keys = append(keys, key)
	}
	sort.Strings(keys)
	for i, key := range keys {
		separator := ","
		if i == len(keys)-1 {
			separator = ""
		}
		fmt.Printf("%s: %s%s\n", encode(key), encode(entries[key]), separator)
	}
}

func encode(value any) string {
	text, err := json.Marshal(value)
	if err != nil {
		fail("%v", err)
	}
	return string(text)
}

// Whether a kind has a protobuf form: at least one of its fields carries a protobuf tag.
func hasProtobuf(goType reflect.Type) bool {
	for i := range goType.NumField() {
		if _, ok := goType.Field(i).Tag.Lookup("protobuf"); ok {
			return true
		}
	}
	return false
}

// The short name of a struct type ("core/v1.Pod"), recorded with its fields on first sight.
func visit(goType reflect.Type, messages map[string][]field) string {
	parts := strings.Split(goType.PkgPath(), "/")
	if len(parts) < 2 {
		fail("unexpected package %q", goType.PkgPath())
	}
	name := parts[len(parts)-2] + "/" + parts[len(parts)-1] + "." + goType.Name()
	if _, seen := messages[name]; seen {
		return name
	}
	messages[name] = nil
	fields := []field{}
	for i := range goType.NumField() {
		f := goType.Field(i)
		tag, ok := f.Tag.Lookup("protobuf")
		if !ok {
			continue
		}
		spec := strings.Split(tag, ",")
		number, err := strconv.Atoi(spec[1])
		if err != nil {
			fail("%s.%s: protobuf tag %q", name, f.Name, tag)
		}
		jsonTag := strings.Split(f.Tag.Get("json"), ",")
		if jsonTag[0] == "-" {
			fail("%s.%s: a protobuf field JSON leaves out", name, f.Name)
		}
		flags := ""
		if jsonTag[0] == "" {
			// `json:",inline"`, or an embedded struct without a JSON name: Go inlines both.
			flags += "i"
		}
		for _, option := range jsonTag[1:] {
			switch option {
			case "omitempty":
				flags += "o"
			case "omitzero":
				flags += "z"
			}
		}
		typeName, more := kind(f.Type, messages, name+"."+f.Name)
		fields = append(fields, field{number, jsonTag[0], typeName, flags + more})
	}
	sort.Slice(fields, func(a, b int) bool { return fields[a][0].(int) < fields[b][0].(int) })
	messages[name] = fields
	return name
}

// A field's type name and flags.
func kind(goType reflect.Type, messages map[string][]field, where string) (string, string) {
	flags := ""
	if goType.Kind() == reflect.Pointer {
		flags += "p"
		goType = goType.Elem()
	}
	if name, ok := special[goType]; ok {
		return name, flags
	}
	switch goType.Kind() {
	case reflect.Slice:
		if goType.Elem().Kind() == reflect.Uint8 {
			return "bytes", flags
		}
		element, more := kind(goType.Elem(), messages, where)
		if strings.ContainsAny(more, "rm") {
			fail("%s: a list of lists or maps has no protobuf form zen-sim knows", where)
		}
		return element, flags + "r" + more
	case reflect.Map:
		if goType.Key().Kind() != reflect.String {
			fail("%s: map keys must be strings", where)
		}
		value := goType.Elem()
		if value.Kind() == reflect.Slice && value.Elem().Kind() == reflect.String && value.Name() != "" {
			return "string", flags + "mw"
		}
		element, more := kind(value, messages, where)
		if strings.ContainsAny(more, "rm") {
			fail("%s: a map of lists or maps has no protobuf form zen-sim knows", where)
		}
		return element, flags + "m" + more
	case reflect.Struct:
		return visit(goType, messages), flags
	case reflect.String:
		return "string", flags
	case reflect.Bool:
		return "bool", flags
	case reflect.Int32:
		return "int32", flags
	case reflect.Int64:
		return "int64", flags
	case reflect.Uint32:
		return "uint32", flags
	case reflect.Uint64:
		return "uint64", flags
	case reflect.Float64:
		return "float64", flags
	}
	fail("%s: Go type %s has no protobuf form zen-sim knows", where, goType)
	return "", ""
}

func fail(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "protoschema: "+format+"\n", args...)
	os.Exit(1)
}
