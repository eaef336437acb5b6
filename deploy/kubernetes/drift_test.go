package kubernetes_test

import (
	"bufio"
	"bytes"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"
)

// repo is the repository's root, seen from this directory.
const repo = "../../"

// legitimateDifferences are the settings in which the Kubernetes
// manifests may differ from docker-compose.yml, by Compose service, with
// the reason. The test fails on any other difference, and on an entry
// here that is no longer a difference.
var legitimateDifferences = map[string]map[string]string{
	"api": {
		// Not set in Kubernetes: the binary's default, ":9100".
		"KVFLEET_OPS_ADDR": `Compose binds the operations port to the API's back-network address ("@db-proxy:9100") because the container sits on two networks and nginx must not reach 9100; a pod has one network interface, and the NetworkPolicy "api" admits only Prometheus to 9100`,
	},
}

// composeApps maps the Compose services that run the kvfleet binaries to
// the containers that play their part in Kubernetes (Deployment/container).
var composeApps = map[string][]string{
	"api":      {"api/api"},
	"consumer": {"consumer/consumer"},
	// The one-shot migrate service is the init container of both.
	"migrate": {"api/migrate", "consumer/migrate"},
}

// compared says whether a variable is part of the comparison: the
// binaries' settings and the Go runtime's.
func compared(name string) bool {
	return strings.HasPrefix(name, "KVFLEET_") || strings.HasPrefix(name, "GO")
}

// composeFile is the part of docker-compose.yml this test reads.
type composeFile struct {
	Services map[string]struct {
		Image       string         `json:"image"`
		Environment map[string]any `json:"environment"`
	} `json:"services"`
}

func readCompose(t *testing.T) composeFile {
	t.Helper()
	data, err := os.ReadFile(repo + "docker-compose.yml")
	if err != nil {
		t.Fatal(err)
	}
	var c composeFile
	// YAML merge keys (<<: *app-env) are resolved by the decoder.
	if err := yaml.Unmarshal(data, &c); err != nil {
		t.Fatalf("docker-compose.yml: %v", err)
	}
	return c
}

// interpolation is Compose's ${NAME}, ${NAME:-default}, ${NAME-default},
// ${NAME:?message} and ${NAME?message}.
var interpolation = regexp.MustCompile(`\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?])([^}]*))?\}`)

// interpolate resolves a Compose value as in a fleet whose .env sets only
// what start.sh requires: a default is taken, anything else (the secrets)
// becomes "<NAME>", the form the Kubernetes side gives a Secret's key.
func interpolate(v string) string {
	v = strings.ReplaceAll(v, "$$", "\x00")
	v = interpolation.ReplaceAllStringFunc(v, func(m string) string {
		p := interpolation.FindStringSubmatch(m)
		if p[2] == ":-" || p[2] == "-" {
			return p[3]
		}
		return "<" + p[1] + ">"
	})
	return strings.ReplaceAll(v, "\x00", "$")
}

// TestComposeDrift: the KVFLEET_* (and GO*) variables that the Compose
// file gives each application service are the ones, with the same
// values, that the Kubernetes manifests give its containers, but for
// legitimateDifferences. Secrets compare by the Secret key they come from.
func TestComposeDrift(t *testing.T) {
	compose := readCompose(t)
	forEach(t, func(t *testing.T, r rendering) {
		for service, containers := range composeApps {
			svc, ok := compose.Services[service]
			if !ok {
				t.Errorf("docker-compose.yml has no service %q; update composeApps", service)
				continue
			}
			want := map[string]string{}
			for k, v := range svc.Environment {
				if compared(k) {
					want[k] = interpolate(fmt.Sprint(v))
				}
			}
			allowed := legitimateDifferences[service]
			for _, ref := range containers {
				deployment, container, _ := strings.Cut(ref, "/")
				c := findContainer(t, r, deployment, container)
				if c == nil {
					continue
				}
				got := map[string]string{}
				for k, v := range r.environment(t, c, true) {
					if compared(k) {
						got[k] = v
					}
				}
				for _, k := range slices.Sorted(keys(want, got)) {
					w, inCompose := want[k]
					g, inK8s := got[k]
					same := inCompose == inK8s && w == g
					_, exempt := allowed[k]
					switch {
					case !same && !exempt:
						t.Errorf("%s: %s differs from Compose's %s service:\n  compose:    %s\n  kubernetes: %s\n(align them, or list the difference with its reason in legitimateDifferences)",
							ref, k, service, show(w, inCompose), show(g, inK8s))
					case same && exempt:
						t.Errorf("%s: %s no longer differs from Compose's %s service; remove it from legitimateDifferences", ref, k, service)
					}
				}
			}
		}
	})
}

func keys(maps ...map[string]string) func(func(string) bool) {
	return func(yield func(string) bool) {
		seen := map[string]bool{}
		for _, m := range maps {
			for k := range m {
				if !seen[k] {
					seen[k] = true
					if !yield(k) {
						return
					}
				}
			}
		}
	}
}

func show(v string, set bool) string {
	if !set {
		return "(not set)"
	}
	return v
}

func findContainer(t *testing.T, r rendering, deployment, name string) *corev1.Container {
	t.Helper()
	o, ok := r.find("Deployment", deployment)
	if !ok {
		t.Errorf("no Deployment %s", deployment)
		return nil
	}
	for _, c := range allContainers(&o.Typed.(*appsv1.Deployment).Spec.Template.Spec) {
		if c.Name == name {
			return c
		}
	}
	t.Errorf("Deployment %s has no container %s", deployment, name)
	return nil
}

// copies are the files kustomize needs inside this directory (it loads
// nothing from outside a kustomization's root under kubectl apply -k),
// copied from the Compose fleet's, which stay the originals.
var copies = map[string]string{
	"base/nginx/proxy.conf":                                      "nginx/proxy.conf",
	"base/nginx/errors.conf":                                     "nginx/errors.conf",
	"base/redis/node.sh":                                         "deploy/redis/node.sh",
	"base/redis/sentinel.sh":                                     "deploy/redis/sentinel.sh",
	"base/rabbitmq/start.sh":                                     "deploy/rabbitmq/start.sh",
	"components/postgres/start.sh":                               "deploy/postgres/start.sh",
	"components/cockroach/start.sh":                              "deploy/cockroach/start.sh",
	"components/cockroach/init.sh":                               "deploy/cockroach/init.sh",
	"components/grafana/dashboards/kvfleet-overview.json":        "deploy/grafana/dashboards/kvfleet-overview.json",
	"components/grafana/provisioning/datasources/prometheus.yml": "deploy/grafana/provisioning/datasources/prometheus.yml",
	"components/grafana/provisioning/dashboards/kvfleet.yml":     "deploy/grafana/provisioning/dashboards/kvfleet.yml",
}

// ruleFiles returns the fleet's alert rule files (deploy/prometheus/rules),
// which base/prometheus/rules copies and the ConfigMap prometheus-rules
// holds.
func ruleFiles(t *testing.T) []string {
	t.Helper()
	files, err := filepath.Glob(repo + "deploy/prometheus/rules/*.rules.yml")
	if err != nil {
		t.Fatal(err)
	}
	for i, f := range files {
		files[i] = filepath.Base(f)
	}
	return files
}

// TestCopies: each copy is byte for byte its original, and every alert
// rule file of the fleet is copied and in the ConfigMap prometheus-rules.
func TestCopies(t *testing.T) {
	all := maps.Clone(copies)
	rules := ruleFiles(t)
	for _, f := range rules {
		all["base/prometheus/rules/"+f] = "deploy/prometheus/rules/" + f
	}
	for copied, original := range all {
		want, err := os.ReadFile(repo + original)
		if err != nil {
			t.Errorf("%s: %v", original, err)
			continue
		}
		got, err := os.ReadFile(copied)
		if err != nil {
			t.Errorf("%s: %v", copied, err)
			continue
		}
		if !bytes.Equal(got, want) {
			t.Errorf("deploy/kubernetes/%s differs from %s, its original; copy it again:\n  cp %s deploy/kubernetes/%s", copied, original, original, copied)
		}
	}
	forEach(t, func(t *testing.T, r rendering) {
		i := slices.IndexFunc(r.Objects, func(o object) bool {
			return o.Kind == "ConfigMap" && strings.HasPrefix(o.Name, "prometheus-rules-")
		})
		if i < 0 {
			t.Fatal("no ConfigMap prometheus-rules")
		}
		o := r.Objects[i]
		data := o.Typed.(*corev1.ConfigMap).Data
		got := slices.Sorted(maps.Keys(data))
		if !slices.Equal(got, rules) {
			t.Errorf("ConfigMap prometheus-rules holds %v, the fleet's rule files are %v: list each one in base/kustomization.yaml (prometheus-rules)", got, rules)
		}
		for name, content := range data {
			if want, err := os.ReadFile(repo + "deploy/prometheus/rules/" + name); err == nil && string(want) != content {
				t.Errorf("ConfigMap prometheus-rules: %s differs from deploy/prometheus/rules/%s", name, name)
			}
		}
	})
	// Every file the overlays' generators read from outside Compose's
	// originals is one of ours, listed here or made for Kubernetes.
	dirs := map[string]bool{}
	for c := range all {
		dirs[c[:strings.LastIndex(c, "/")]] = true
	}
	for dir := range dirs {
		entries, err := os.ReadDir(dir)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range entries {
			path := dir + "/" + e.Name()
			if _, ok := all[path]; !ok && !e.IsDir() && !kubernetesOnly[path] && !strings.HasSuffix(path, ".yaml") {
				t.Errorf("%s is neither a known copy nor a Kubernetes-only file; list it in copies or kubernetesOnly", path)
			}
		}
	}
}

// kubernetesOnly are the non-manifest files written for Kubernetes.
var kubernetesOnly = map[string]bool{
	"base/nginx/nginx.conf":   true, // TestNginxConf compares it with the fleet's
	"base/nginx/k8s-start.sh": true,
}

// nginxDifferences are the directives in which base/nginx/nginx.conf may
// differ from the fleet's nginx/nginx.conf (its header says why).
var nginxDifferences = []struct{ compose, kubernetes *regexp.Regexp }{
	{regexp.MustCompile(`^listen 80;$`), regexp.MustCompile(`^listen 8080;$`)},
	{regexp.MustCompile(`^server api:8000 (.*);$`), regexp.MustCompile(`^include /tmp/kvfleet/api-upstream\.conf;$`)},
}

// directives returns a configuration's lines without comments and blank
// lines, trimmed.
func directives(t *testing.T, path string) []string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	s := bufio.NewScanner(bytes.NewReader(data))
	for s.Scan() {
		line := strings.TrimSpace(s.Text())
		if line != "" && !strings.HasPrefix(line, "#") {
			out = append(out, line)
		}
	}
	return out
}

// TestNginxConf: the Kubernetes nginx.conf is the fleet's but for the
// listed differences, and the upstream server that k8s-start.sh writes
// keeps the fleet's failure accounting.
func TestNginxConf(t *testing.T) {
	compose := directives(t, repo+"nginx/nginx.conf")
	k8s := directives(t, "base/nginx/nginx.conf")
	var serverParams string
	if len(compose) != len(k8s) {
		t.Errorf("base/nginx/nginx.conf has %d directive lines, nginx/nginx.conf %d: bring the fleet's change over", len(k8s), len(compose))
	}
	for i := range min(len(compose), len(k8s)) {
		c, k := compose[i], k8s[i]
		if c == k {
			continue
		}
		allowed := false
		for _, d := range nginxDifferences {
			if m := d.compose.FindStringSubmatch(c); m != nil && d.kubernetes.MatchString(k) {
				allowed = true
				if len(m) > 1 {
					serverParams = m[1]
				}
			}
		}
		if !allowed {
			t.Errorf("line %d of the directives differs:\n  nginx/nginx.conf:      %s\n  base/nginx/nginx.conf: %s", i+1, c, k)
			break
		}
	}
	start, err := os.ReadFile("base/nginx/k8s-start.sh")
	if err != nil {
		t.Fatal(err)
	}
	want := ":8000 resolve " + serverParams + ";"
	if serverParams == "" || !strings.Contains(string(start), want) {
		t.Errorf("k8s-start.sh does not write the upstream server with the fleet's parameters (%q)", want)
	}
	// The port nginx listens on is the container's.
	forEach(t, func(t *testing.T, r rendering) {
		c := findContainer(t, r, "nginx", "nginx")
		if c == nil {
			return
		}
		if !slices.Contains(k8s, fmt.Sprintf("listen %d;", c.Ports[0].ContainerPort)) {
			t.Errorf("the nginx container's port %d is not the one nginx.conf listens on", c.Ports[0].ContainerPort)
		}
	})
}

// TestImages: every image is the one the Compose fleet runs: a tag pinned
// in deploy/images.env (the one place where tags are written), or, for
// the containers that run the kvfleet binaries, the applications' image
// (the Compose file's default in base; an overlay may name the user's
// registry, see docs/kubernetes.md).
func TestImages(t *testing.T) {
	data, err := os.ReadFile(repo + "deploy/images.env")
	if err != nil {
		t.Fatal(err)
	}
	pinnedImages := map[string]string{}
	for line := range strings.Lines(string(data)) {
		name, value, ok := strings.Cut(strings.TrimSpace(line), "=")
		if ok && !strings.HasPrefix(name, "#") && strings.HasSuffix(name, "_IMAGE") {
			pinnedImages[value] = name
		}
	}
	appImage := interpolate(readCompose(t).Services["api"].Image)
	forEach(t, func(t *testing.T, r rendering) {
		for _, w := range r.workloads() {
			for _, c := range allContainers(&w.Template.Spec) {
				_, pinned := pinnedImages[c.Image]
				switch {
				case binary(c) != "" && pinned:
					t.Errorf("%s container %s runs a kvfleet binary from the third-party image %s", w.Object, c.Name, c.Image)
				case binary(c) == "" && !pinned:
					t.Errorf("%s container %s: image %s is not one of deploy/images.env", w.Object, c.Name, c.Image)
				}
			}
		}
	})
	t.Run("base", func(t *testing.T) {
		data, err := os.ReadFile("base/api.yaml")
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(data), "image: "+appImage+"\n") {
			t.Errorf("base/api.yaml does not run the Compose file's default application image %s", appImage)
		}
	})
}
