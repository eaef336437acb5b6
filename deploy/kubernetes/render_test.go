// Package kubernetes_test renders the kustomize overlays of this directory
// with kustomize's Go API (the version pinned in go.mod), decodes every
// object strictly into the Kubernetes API types, and checks them: the
// policies every workload must follow (policy_test.go) and that nothing
// drifts from the Compose fleet (drift_test.go). No cluster is needed:
// what a cluster would add (admission, scheduling, the images' behaviour)
// is not tested here; docs/kubernetes.md lists it.
package kubernetes_test

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"
	"sigs.k8s.io/yaml"
)

// overlays are the directories a user applies.
var overlays = []string{"dev", "production"}

// optionalComponents are rendered on top of production as well, as a user
// who adds them would.
var optionalComponents = []string{"keda", "ingress"}

// namespace is the overlays' namespace.
const namespace = "kvfleet"

// secretKeys are the keys of the Secret "kvfleet-secrets" that a user's
// secrets.env holds (the names start.sh writes into .env);
// docs/kubernetes.md must name each of them.
var secretKeys = []string{
	"KVFLEET_REDIS_PASSWORD",
	"KVFLEET_REDIS_SENTINEL_PASSWORD",
	"KVFLEET_DB_PASSWORD",
	"KVFLEET_DB_APP_PASSWORD",
	"KVFLEET_RABBITMQ_PASSWORD",
	"KVFLEET_RABBITMQ_ADMIN_PASSWORD",
	"KVFLEET_RABBITMQ_COOKIE",
	"KVFLEET_GRAFANA_PASSWORD",
}

// object is one rendered object: its identity, its typed form (nil for
// custom resources) and its generic form.
type object struct {
	APIVersion, Kind, Name, Namespace string
	Typed                             runtime.Object
	Raw                               map[string]any
	YAML                              []byte
}

func (o object) String() string { return o.Kind + "/" + o.Name }

// rendering is the output of one kustomize build.
type rendering struct {
	Name    string
	Objects []object
	// Secrets are the values written into the secrets.env the build read.
	Secrets map[string]string
}

// customKinds are the custom resources the manifests use, by API group:
// they are checked by structure (customResources in policy_test.go), since
// their Go types would bring their operators' modules in.
var customKinds = map[string][]string{
	"cert-manager.io/v1": {"Certificate", "Issuer"},
	"keda.sh/v1alpha1":   {"ScaledObject"},
}

var decoder = func() runtime.Decoder {
	scheme := runtime.NewScheme()
	for _, add := range []func(*runtime.Scheme) error{
		corev1.AddToScheme, appsv1.AddToScheme, batchv1.AddToScheme, autoscalingv2.AddToScheme,
		policyv1.AddToScheme, networkingv1.AddToScheme, rbacv1.AddToScheme,
	} {
		if err := add(scheme); err != nil {
			panic(err)
		}
	}
	// Strict: an unknown or duplicated field is an error, not dropped.
	return serializer.NewCodecFactory(scheme, serializer.EnableStrict).UniversalDeserializer()
}()

// render builds dir (relative to this directory) with components added,
// in an in-memory copy of this directory where secrets.env is written
// with fresh random values, as a user would write it.
func render(dir string, components ...string) (rendering, error) {
	fsys := filesys.MakeFsInMemory()
	const root = "/kvfleet"
	err := filepath.WalkDir(".", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || strings.HasSuffix(path, ".go") || filepath.Base(path) == "secrets.env" {
			return err
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		return fsys.WriteFile(filepath.Join(root, path), data)
	})
	if err != nil {
		return rendering{}, fmt.Errorf("copy the manifests: %w", err)
	}
	secrets := make(map[string]string)
	var env strings.Builder
	for _, k := range secretKeys {
		secrets[k] = randomSecret()
		fmt.Fprintf(&env, "%s=%s\n", k, secrets[k])
	}
	if err := fsys.WriteFile(filepath.Join(root, dir, "secrets.env"), []byte(env.String())); err != nil {
		return rendering{}, err
	}
	name, target := dir, filepath.Join(root, dir)
	if len(components) > 0 {
		name = dir + "+" + strings.Join(components, "+")
		target = filepath.Join(root, "variant")
		k := fmt.Sprintf("apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nnamespace: %s\nresources: [../%s]\ncomponents:\n", namespace, dir)
		for _, c := range components {
			k += "  - ../components/" + c + "\n"
		}
		if err := fsys.WriteFile(filepath.Join(target, "kustomization.yaml"), []byte(k)); err != nil {
			return rendering{}, err
		}
	}
	resources, err := krusty.MakeKustomizer(krusty.MakeDefaultOptions()).Run(fsys, target)
	if err != nil {
		return rendering{}, fmt.Errorf("kustomize build %s: %w", name, err)
	}
	r := rendering{Name: name, Secrets: secrets}
	var errs []error
	for _, res := range resources.Resources() {
		y, err := res.AsYAML()
		if err != nil {
			return rendering{}, fmt.Errorf("%s: %w", name, err)
		}
		o := object{APIVersion: res.GetApiVersion(), Kind: res.GetKind(), Name: res.GetName(), Namespace: res.GetNamespace(), YAML: y}
		if err := yaml.Unmarshal(y, &o.Raw); err != nil {
			return rendering{}, fmt.Errorf("%s: %s: %w", name, o, err)
		}
		if slices.Contains(customKinds[o.APIVersion], o.Kind) {
			r.Objects = append(r.Objects, o)
			continue
		}
		typed, gvk, err := decoder.Decode(y, nil, nil)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %s (%s) does not decode strictly into the Kubernetes API types: %w", name, o, o.APIVersion, err))
			continue
		}
		if gvk.Kind != o.Kind {
			errs = append(errs, fmt.Errorf("%s: %s decoded as %s", name, o, gvk))
		}
		o.Typed = typed
		r.Objects = append(r.Objects, o)
	}
	return r, errors.Join(errs...)
}

func randomSecret() string {
	b := make([]byte, 12)
	_, _ = rand.Read(b)
	// Letters and digits only, as start.sh's secrets: safe inside a URL.
	return "Sx" + hex.EncodeToString(b)
}

// renderAll builds every overlay, and production with the optional
// components, once per test binary.
var renderAll = sync.OnceValues(func() ([]rendering, error) {
	var all []rendering
	var errs []error
	add := func(r rendering, err error) {
		errs = append(errs, err)
		if err == nil {
			all = append(all, r)
		}
	}
	for _, o := range overlays {
		add(render(o))
	}
	add(render("production", optionalComponents...))
	return all, errors.Join(errs...)
})

// forEach runs check on every rendering as a subtest.
func forEach(t *testing.T, check func(t *testing.T, r rendering)) {
	t.Helper()
	all, err := renderAll()
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range all {
		t.Run(r.Name, func(t *testing.T) { check(t, r) })
	}
}

// find returns the object of kind and name, if rendered.
func (r rendering) find(kind, name string) (object, bool) {
	for _, o := range r.Objects {
		if o.Kind == kind && o.Name == name {
			return o, true
		}
	}
	return object{}, false
}

// workload is a controller of pods and the pods it would make: a
// StatefulSet's pods each carry their name label, which per-pod Services
// select.
type workload struct {
	Object   object
	Template *corev1.PodTemplateSpec
	// Pods are the labels of the pods it makes: one set for a Deployment
	// or a Job (their pods' labels are the template's), one per ordinal
	// for a StatefulSet.
	Pods []map[string]string
	// LongRunning pods need probes; a Job's do not.
	LongRunning bool
}

func (r rendering) workloads() []workload {
	var out []workload
	for _, o := range r.Objects {
		switch v := o.Typed.(type) {
		case *appsv1.Deployment:
			out = append(out, workload{Object: o, Template: &v.Spec.Template, Pods: []map[string]string{v.Spec.Template.Labels}, LongRunning: true})
		case *appsv1.StatefulSet:
			replicas, start := int32(1), int32(0)
			if v.Spec.Replicas != nil {
				replicas = *v.Spec.Replicas
			}
			if v.Spec.Ordinals != nil {
				start = v.Spec.Ordinals.Start
			}
			w := workload{Object: o, Template: &v.Spec.Template, LongRunning: true}
			for i := start; i < start+replicas; i++ {
				labels := map[string]string{
					"statefulset.kubernetes.io/pod-name": fmt.Sprintf("%s-%d", v.Name, i),
					"apps.kubernetes.io/pod-index":       fmt.Sprint(i),
				}
				for k, val := range v.Spec.Template.Labels {
					labels[k] = val
				}
				w.Pods = append(w.Pods, labels)
			}
			out = append(out, w)
		case *batchv1.Job:
			out = append(out, workload{Object: o, Template: &v.Spec.Template, Pods: []map[string]string{v.Spec.Template.Labels}})
		}
	}
	return out
}

// allContainers returns the init containers and the containers of a pod.
func allContainers(spec *corev1.PodSpec) []*corev1.Container {
	var out []*corev1.Container
	for i := range spec.InitContainers {
		out = append(out, &spec.InitContainers[i])
	}
	for i := range spec.Containers {
		out = append(out, &spec.Containers[i])
	}
	return out
}

// TestRender renders every overlay: kustomize accepts them, every object
// decodes strictly (in render), and each overlay renders the workloads it
// promises.
func TestRender(t *testing.T) {
	want := map[string][]string{
		"dev":                     {"Deployment/api", "Deployment/consumer", "Deployment/nginx", "StatefulSet/redis", "StatefulSet/redis-sentinel", "StatefulSet/rabbitmq", "StatefulSet/prometheus", "StatefulSet/postgres", "Secret/", "Namespace/kvfleet"},
		"production":              {"Deployment/api", "Deployment/consumer", "Deployment/nginx", "StatefulSet/redis", "StatefulSet/redis-sentinel", "StatefulSet/rabbitmq", "StatefulSet/prometheus", "StatefulSet/cockroach", "Job/cockroach-init", "Deployment/grafana", "Secret/", "Namespace/kvfleet", "PodDisruptionBudget/api"},
		"production+keda+ingress": {"ScaledObject/consumer", "Ingress/kvfleet"},
	}
	forEach(t, func(t *testing.T, r rendering) {
		for _, w := range want[r.Name] {
			kind, name, _ := strings.Cut(w, "/")
			found := false
			for _, o := range r.Objects {
				if o.Kind == kind && strings.HasPrefix(o.Name, name) {
					found = true
				}
			}
			if !found {
				t.Errorf("%s renders no %s", r.Name, w)
			}
		}
	})
	t.Run("base alone renders no Secret", func(t *testing.T) {
		fsys := filesys.MakeFsOnDisk()
		m, err := krusty.MakeKustomizer(krusty.MakeDefaultOptions()).Run(fsys, "base")
		if err != nil {
			t.Fatalf("kustomize build base: %v", err)
		}
		for _, res := range m.Resources() {
			if res.GetKind() == "Secret" {
				t.Errorf("base renders Secret %s: secrets come only from the user's secrets.env", res.GetName())
			}
		}
	})
}

// TestStrictDecoder: the decoder that render uses refuses what the API
// server would drop silently, so that a misspelt field fails the tests.
func TestStrictDecoder(t *testing.T) {
	for name, doc := range map[string]string{
		"unknown field":    "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\ndata: {a: b}\nbogus: 1\n",
		"misspelt field":   "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: x}\nspec: {replica: 2}\n",
		"duplicated field": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\ndata: {a: b}\ndata: {c: d}\n",
	} {
		if _, _, err := decoder.Decode([]byte(doc), nil, nil); err == nil {
			t.Errorf("%s: decoded without an error", name)
		}
	}
	if _, _, err := decoder.Decode([]byte("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\ndata: {a: b}\n"), nil, nil); err != nil {
		t.Errorf("a valid ConfigMap: %v", err)
	}
}
