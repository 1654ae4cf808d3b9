// Command crdtrim removes the descriptions inside embedded Kubernetes types (a Consumer's pod
// template) from generated CRDs, keeping Millrace's own field docs. The full PodTemplateSpec
// documentation would make the CRD larger than `kubectl apply` can store in its annotation.
//
//	go run ./hack/crdtrim <crd.yaml> <json path of the embedded field>...
//
// e.g. crdtrim config/crd/bases/millrace.io_consumers.yaml spec.template
package main

import (
	"fmt"
	"os"
	"strings"

	"sigs.k8s.io/yaml"
)

func main() {
	if len(os.Args) < 3 {
		fmt.Fprintln(os.Stderr, "usage: crdtrim <crd.yaml> <field path>...")
		os.Exit(2)
	}
	if err := trim(os.Args[1], os.Args[2:]); err != nil {
		fmt.Fprintln(os.Stderr, "crdtrim:", err)
		os.Exit(1)
	}
}

func trim(file string, paths []string) error {
	raw, err := os.ReadFile(file)
	if err != nil {
		return err
	}
	var crd map[string]any
	if err := yaml.Unmarshal(raw, &crd); err != nil {
		return err
	}
	versions, _ := dig(crd, "spec", "versions").([]any)
	for _, v := range versions {
		root, _ := dig(v, "schema", "openAPIV3Schema").(map[string]any)
		for _, path := range paths {
			node := root
			for _, field := range strings.Split(path, ".") {
				node, _ = dig(node, "properties", field).(map[string]any)
			}
			if node == nil {
				return fmt.Errorf("%s: no field %s", file, path)
			}
			for _, child := range node["properties"].(map[string]any) {
				stripDescriptions(child)
			}
		}
	}
	out, err := yaml.Marshal(crd)
	if err != nil {
		return err
	}
	return os.WriteFile(file, append([]byte("---\n"), out...), 0o644)
}

func dig(v any, keys ...string) any {
	for _, k := range keys {
		m, ok := v.(map[string]any)
		if !ok {
			return nil
		}
		v = m[k]
	}
	return v
}

func stripDescriptions(v any) {
	switch t := v.(type) {
	case map[string]any:
		delete(t, "description")
		for k, child := range t {
			if k == "properties" {
				// property names may be "description" themselves: recurse into each, never delete them
				for _, p := range child.(map[string]any) {
					stripDescriptions(p)
				}
				continue
			}
			stripDescriptions(child)
		}
	case []any:
		for _, child := range t {
			stripDescriptions(child)
		}
	}
}
