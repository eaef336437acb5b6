package kubernetes_test

import (
	"encoding/base64"
	"fmt"
	"net"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/kvfleet/kvfleet/internal/config"
)

// TestContainers checks every container of every pod template: requests
// and limits, a non-root read-only security context, a pinned image, and
// probes for the long-running ones.
func TestContainers(t *testing.T) {
	forEach(t, func(t *testing.T, r rendering) {
		for _, w := range r.workloads() {
			spec := &w.Template.Spec
			pod := spec.SecurityContext
			if pod == nil || pod.RunAsNonRoot == nil || !*pod.RunAsNonRoot {
				t.Errorf("%s: the pod does not set runAsNonRoot", w.Object)
			}
			if pod != nil && pod.RunAsUser != nil && *pod.RunAsUser == 0 {
				t.Errorf("%s: the pod runs as user 0", w.Object)
			}
			if pod == nil || pod.SeccompProfile == nil || pod.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
				t.Errorf("%s: the pod's seccomp profile is not RuntimeDefault", w.Object)
			}
			if spec.HostNetwork || spec.HostPID || spec.HostIPC {
				t.Errorf("%s: the pod shares a host namespace", w.Object)
			}
			// Only Prometheus talks to the Kubernetes API.
			if spec.ServiceAccountName == "" && (spec.AutomountServiceAccountToken == nil || *spec.AutomountServiceAccountToken) {
				t.Errorf("%s: the pod mounts the default service account's token; set automountServiceAccountToken: false", w.Object)
			}
			if spec.ServiceAccountName != "" {
				if _, ok := r.find("ServiceAccount", spec.ServiceAccountName); !ok {
					t.Errorf("%s: service account %q is not rendered", w.Object, spec.ServiceAccountName)
				}
			}
			inits := len(spec.InitContainers)
			for i, c := range allContainers(spec) {
				where := fmt.Sprintf("%s container %s", w.Object, c.Name)
				checkResources(t, where, c.Resources)
				checkSecurity(t, where, c.SecurityContext)
				checkImage(t, where, c.Image)
				if w.LongRunning && i >= inits {
					for name, p := range map[string]*corev1.Probe{"readiness": c.ReadinessProbe, "liveness": c.LivenessProbe} {
						if p == nil {
							t.Errorf("%s has no %s probe", where, name)
							continue
						}
						checkProbePort(t, where+" "+name+" probe", c, p)
					}
					checkProbePort(t, where+" startup probe", c, c.StartupProbe)
				}
			}
		}
	})
}

func checkResources(t *testing.T, where string, res corev1.ResourceRequirements) {
	t.Helper()
	for _, name := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
		req, hasReq := res.Requests[name]
		limit, hasLimit := res.Limits[name]
		if !hasReq || !hasLimit {
			t.Errorf("%s: %s needs both a request and a limit (request %v, limit %v)", where, name, hasReq, hasLimit)
			continue
		}
		if req.Cmp(limit) > 0 {
			t.Errorf("%s: %s request %s is above its limit %s", where, name, req.String(), limit.String())
		}
	}
}

func checkSecurity(t *testing.T, where string, sc *corev1.SecurityContext) {
	t.Helper()
	switch {
	case sc == nil:
		t.Errorf("%s has no securityContext", where)
		return
	case sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation:
		t.Errorf("%s: allowPrivilegeEscalation must be false", where)
	case sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem:
		t.Errorf("%s: readOnlyRootFilesystem must be true", where)
	case sc.Privileged != nil && *sc.Privileged:
		t.Errorf("%s is privileged", where)
	case sc.RunAsUser != nil && *sc.RunAsUser == 0:
		t.Errorf("%s runs as user 0", where)
	case sc.Capabilities == nil || !slices.Contains(sc.Capabilities.Drop, "ALL") || len(sc.Capabilities.Add) > 0:
		t.Errorf("%s: capabilities must drop ALL and add none", where)
	}
}

// pinned is an image with a tag other than latest, or a digest.
var pinned = regexp.MustCompile(`^[a-z0-9./_-]+(:[A-Za-z0-9._-]+)?(@sha256:[0-9a-f]{64})?$`)

func checkImage(t *testing.T, where, image string) {
	t.Helper()
	m := pinned.FindStringSubmatch(image)
	if m == nil || (m[1] == "" && m[2] == "") || m[1] == ":latest" {
		t.Errorf("%s: image %q is not pinned (a tag other than latest, or a digest)", where, image)
	}
}

// checkProbePort fails when a probe names a port the container lacks.
func checkProbePort(t *testing.T, where string, c *corev1.Container, p *corev1.Probe) {
	t.Helper()
	if p == nil {
		return
	}
	var port *intstr.IntOrString
	switch {
	case p.HTTPGet != nil:
		port = &p.HTTPGet.Port
	case p.TCPSocket != nil:
		port = &p.TCPSocket.Port
	case p.GRPC != nil:
		port = &intstr.IntOrString{IntVal: p.GRPC.Port}
	case p.Exec != nil:
		return
	}
	if port == nil || !containerHasPort(c, *port) {
		t.Errorf("%s: port %v is not one of the container's ports", where, port)
	}
}

func containerHasPort(c *corev1.Container, port intstr.IntOrString) bool {
	for _, p := range c.Ports {
		if (port.Type == intstr.String && p.Name == port.StrVal) || (port.Type == intstr.Int && p.ContainerPort == port.IntVal) {
			return true
		}
	}
	return false
}

// podsMatching returns, for each workload whose pods the selector selects,
// the workload and the matched pods' labels.
func (r rendering) podsMatching(sel labels.Selector) (matched []workload) {
	for _, w := range r.workloads() {
		for _, pod := range w.Pods {
			if sel.Matches(labels.Set(pod)) {
				matched = append(matched, w)
				break
			}
		}
	}
	return matched
}

func selector(t *testing.T, where string, s *metav1.LabelSelector) labels.Selector {
	t.Helper()
	if s == nil {
		t.Fatalf("%s: no selector", where)
	}
	sel, err := metav1.LabelSelectorAsSelector(s)
	if err != nil {
		t.Fatalf("%s: %v", where, err)
	}
	return sel
}

// TestSelectors checks that every selector selects what it is meant to:
// controllers their own pods, Services some pods and ports those pods
// have, PodDisruptionBudgets one workload, NetworkPolicies existing pods
// and ports, autoscalers existing workloads.
func TestSelectors(t *testing.T) {
	forEach(t, func(t *testing.T, r rendering) {
		for _, w := range r.workloads() {
			var s *metav1.LabelSelector
			switch v := w.Object.Typed.(type) {
			case *appsv1.Deployment:
				s = v.Spec.Selector
			case *appsv1.StatefulSet:
				s = v.Spec.Selector
				// The governing Service, which gives the pods their DNS names.
				svc, ok := r.find("Service", v.Spec.ServiceName)
				if !ok || !labels.SelectorFromSet(svc.Typed.(*corev1.Service).Spec.Selector).Matches(labels.Set(v.Spec.Template.Labels)) {
					t.Errorf("%s: serviceName %q is not a rendered Service that selects its pods", w.Object, v.Spec.ServiceName)
				}
			default:
				continue
			}
			if !selector(t, w.Object.String(), s).Matches(labels.Set(w.Template.Labels)) {
				t.Errorf("%s: its selector does not match its pod template's labels", w.Object)
			}
			// Another controller's selector must not take these pods.
			if got := r.podsMatching(selector(t, w.Object.String(), s)); len(got) != 1 {
				t.Errorf("%s: its selector matches the pods of %d workloads", w.Object, len(got))
			}
		}

		for _, o := range r.Objects {
			switch v := o.Typed.(type) {
			case *corev1.Service:
				checkService(t, r, o, v)
			case *policyv1.PodDisruptionBudget:
				got := r.podsMatching(selector(t, o.String(), v.Spec.Selector))
				if len(got) != 1 {
					t.Errorf("%s selects the pods of %d workloads, want one", o, len(got))
				}
			case *networkingv1.NetworkPolicy:
				checkNetworkPolicy(t, r, o, v)
			case *autoscalingv2.HorizontalPodAutoscaler:
				ref := v.Spec.ScaleTargetRef
				target, ok := r.find(ref.Kind, ref.Name)
				if !ok || target.APIVersion != ref.APIVersion {
					t.Errorf("%s: scale target %s %s/%s is not rendered", o, ref.APIVersion, ref.Kind, ref.Name)
					continue
				}
				if d, ok := target.Typed.(*appsv1.Deployment); ok && d.Spec.Replicas != nil {
					t.Errorf("%s: %s sets replicas, which every apply would reset under the autoscaler", o, target)
				}
				if v.Spec.MinReplicas == nil || *v.Spec.MinReplicas > v.Spec.MaxReplicas {
					t.Errorf("%s: minReplicas must be set and at most maxReplicas", o)
				}
			}
		}
	})
}

func checkService(t *testing.T, r rendering, o object, v *corev1.Service) {
	t.Helper()
	if len(v.Spec.Selector) == 0 {
		t.Errorf("%s has no selector", o)
		return
	}
	sel := labels.SelectorFromSet(v.Spec.Selector)
	matched := r.podsMatching(sel)
	if len(matched) == 0 {
		t.Errorf("%s selects no pod", o)
	}
	for _, w := range matched {
		for _, p := range v.Spec.Ports {
			target := p.TargetPort
			if target.Type == intstr.Int && target.IntVal == 0 {
				target = intstr.FromInt32(p.Port)
			}
			found := false
			for _, c := range w.Template.Spec.Containers {
				if containerHasPort(&c, target) {
					found = true
				}
			}
			if !found {
				t.Errorf("%s port %s: target port %s is not a port of %s's containers", o, p.Name, target.String(), w.Object)
			}
		}
	}
}

func checkNetworkPolicy(t *testing.T, r rendering, o object, v *networkingv1.NetworkPolicy) {
	t.Helper()
	sel := selector(t, o.String(), &v.Spec.PodSelector)
	targets := r.podsMatching(sel)
	if len(targets) == 0 {
		t.Errorf("%s applies to no pod", o)
	}
	for _, rule := range v.Spec.Ingress {
		for _, peer := range rule.From {
			if peer.PodSelector != nil && peer.NamespaceSelector == nil {
				if len(r.podsMatching(selector(t, o.String(), peer.PodSelector))) == 0 {
					t.Errorf("%s admits pods %v, which no workload makes", o, peer.PodSelector.MatchLabels)
				}
			}
		}
		for _, p := range rule.Ports {
			if p.Port == nil {
				continue
			}
			for _, w := range targets {
				found := false
				for _, c := range w.Template.Spec.Containers {
					if containerHasPort(&c, *p.Port) {
						found = true
					}
				}
				if !found {
					t.Errorf("%s opens port %s, which %s does not listen on", o, p.Port.String(), w.Object)
				}
			}
		}
	}
}

// TestReferences checks that every ConfigMap, Secret and key a pod refers
// to is rendered (or, for the CockroachDB certificates, made by a rendered
// cert-manager Certificate), and that the generated Secret has exactly
// the keys a user's secrets.env holds.
func TestReferences(t *testing.T) {
	forEach(t, func(t *testing.T, r rendering) {
		certificates := map[string]bool{}
		for _, o := range r.Objects {
			if o.Kind == "Certificate" {
				if name, ok := nested(o.Raw, "spec", "secretName").(string); ok {
					certificates[name] = true
				}
			}
		}
		secretKeysOf := func(name string) (map[string][]byte, bool) {
			o, ok := r.find("Secret", name)
			if !ok {
				return nil, false
			}
			return o.Typed.(*corev1.Secret).Data, true
		}
		checkSecret := func(where, name, key string, optional bool) {
			if certificates[name] {
				return
			}
			data, ok := secretKeysOf(name)
			switch {
			case !ok:
				t.Errorf("%s: Secret %q is not rendered", where, name)
			case key != "" && data[key] == nil && !optional:
				t.Errorf("%s: Secret %q has no key %q", where, name, key)
			}
		}
		checkConfigMap := func(where, name, key string) {
			o, ok := r.find("ConfigMap", name)
			switch {
			case !ok:
				t.Errorf("%s: ConfigMap %q is not rendered", where, name)
			case key != "":
				if _, ok := o.Typed.(*corev1.ConfigMap).Data[key]; !ok {
					t.Errorf("%s: ConfigMap %q has no key %q", where, name, key)
				}
			}
		}
		for _, w := range r.workloads() {
			for _, c := range allContainers(&w.Template.Spec) {
				where := fmt.Sprintf("%s container %s", w.Object, c.Name)
				for _, from := range c.EnvFrom {
					if from.ConfigMapRef != nil {
						checkConfigMap(where, from.ConfigMapRef.Name, "")
					}
					if from.SecretRef != nil {
						t.Errorf("%s takes a whole Secret (%s): name each key it needs, so that it gets no other", where, from.SecretRef.Name)
					}
				}
				for _, e := range c.Env {
					if e.ValueFrom == nil {
						continue
					}
					if ref := e.ValueFrom.SecretKeyRef; ref != nil {
						checkSecret(where+" env "+e.Name, ref.Name, ref.Key, ref.Optional != nil && *ref.Optional)
					}
					if ref := e.ValueFrom.ConfigMapKeyRef; ref != nil {
						checkConfigMap(where+" env "+e.Name, ref.Name, ref.Key)
					}
				}
			}
			for _, v := range w.Template.Spec.Volumes {
				where := fmt.Sprintf("%s volume %s", w.Object, v.Name)
				switch {
				case v.ConfigMap != nil:
					checkConfigMap(where, v.ConfigMap.Name, "")
				case v.Secret != nil:
					checkSecret(where, v.Secret.SecretName, "", false)
				case v.Projected != nil:
					for _, src := range v.Projected.Sources {
						if src.Secret != nil {
							checkSecret(where, src.Secret.Name, "", false)
						}
						if src.ConfigMap != nil {
							checkConfigMap(where, src.ConfigMap.Name, "")
						}
					}
				}
			}
		}
		var generated []object
		for _, o := range r.Objects {
			if o.Kind == "Secret" {
				generated = append(generated, o)
			}
		}
		if len(generated) != 1 || !strings.HasPrefix(generated[0].Name, "kvfleet-secrets-") {
			t.Fatalf("want exactly one Secret, kvfleet-secrets-<hash> from secrets.env; got %v", generated)
		}
		var keys []string
		for k := range generated[0].Typed.(*corev1.Secret).Data {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		want := slices.Sorted(slices.Values(secretKeys))
		if !slices.Equal(keys, want) {
			t.Errorf("the Secret has keys %v, want those of secrets.env %v", keys, want)
		}
	})
	t.Run("docs name every secret", func(t *testing.T) {
		doc, err := os.ReadFile("../../docs/kubernetes.md")
		if err != nil {
			t.Fatal(err)
		}
		for _, k := range secretKeys {
			if !strings.Contains(string(doc), k) {
				t.Errorf("docs/kubernetes.md does not name %s, which secrets.env must hold", k)
			}
		}
	})
}

// nested returns the value at path in a decoded object, or nil.
func nested(m map[string]any, path ...string) any {
	var v any = m
	for _, p := range path {
		mm, ok := v.(map[string]any)
		if !ok {
			return nil
		}
		v = mm[p]
	}
	return v
}

// reference is $(NAME) in an env value, a command or args, which the
// kubelet replaces with the variable defined before it.
var reference = regexp.MustCompile(`\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)`)

// environment resolves a container's environment as the kubelet does:
// the envFrom ConfigMaps, then env in order, each value's $(NAME)
// references expanded from what was defined before it. A secretKeyRef
// gives the rendered Secret's value, or "<KEY>" when symbolic.
func (r rendering) environment(t *testing.T, c *corev1.Container, symbolic bool) map[string]string {
	t.Helper()
	env := make(map[string]string)
	for _, from := range c.EnvFrom {
		if from.ConfigMapRef == nil {
			continue
		}
		if o, ok := r.find("ConfigMap", from.ConfigMapRef.Name); ok {
			for k, v := range o.Typed.(*corev1.ConfigMap).Data {
				env[from.Prefix+k] = v
			}
		}
	}
	for _, e := range c.Env {
		switch {
		case e.ValueFrom == nil:
			env[e.Name] = reference.ReplaceAllStringFunc(e.Value, func(ref string) string {
				if v, ok := env[ref[2:len(ref)-1]]; ok {
					return v
				}
				return ref
			})
		case e.ValueFrom.SecretKeyRef != nil:
			ref := e.ValueFrom.SecretKeyRef
			if symbolic {
				env[e.Name] = "<" + ref.Key + ">"
			} else if o, ok := r.find("Secret", ref.Name); ok {
				env[e.Name] = string(o.Typed.(*corev1.Secret).Data[ref.Key])
			}
		case e.ValueFrom.FieldRef != nil:
			env[e.Name] = "<" + e.ValueFrom.FieldRef.FieldPath + ">"
		default:
			t.Errorf("container %s env %s: a source this test does not resolve", c.Name, e.Name)
		}
	}
	return env
}

// binary says which kvfleet binary a container runs ("" for none).
func binary(c *corev1.Container) string {
	if len(c.Command) > 0 {
		switch c.Command[0] {
		case "/kvfleet-api":
			return "api"
		case "/kvfleet-consumer":
			return "consumer"
		}
	}
	return ""
}

// TestAppEnvironment loads each application container's rendered
// environment with the binaries' own loaders (internal/config): every
// variable a binary needs is set and valid, every KVFLEET_* variable set
// is one the binary reads, and the pod's timings, ports and memory fit
// the configuration it loads.
func TestAppEnvironment(t *testing.T) {
	variables := map[string][]string{"api": config.APIVariables(), "consumer": config.ConsumerVariables()}
	required := map[string][]string{
		"api":      requiredVariables(func(g func(string) string) error { _, err := config.LoadAPI(g); return err }),
		"consumer": requiredVariables(func(g func(string) string) error { _, err := config.LoadConsumer(g); return err }),
	}
	for bin, names := range required {
		// The loader's own list; these three have no default that could
		// work anywhere, so a loader that stopped requiring them would be
		// a change to look at.
		for _, want := range []string{"KVFLEET_REDIS_PASSWORD", "KVFLEET_DATABASE_URL", "KVFLEET_AMQP_URLS"} {
			if !slices.Contains(names, want) {
				t.Errorf("kvfleet-%s no longer requires %s (required: %v)", bin, want, names)
			}
		}
	}
	forEach(t, func(t *testing.T, r rendering) {
		seen := map[string]bool{}
		for _, w := range r.workloads() {
			spec := &w.Template.Spec
			for _, c := range allContainers(spec) {
				bin := binary(c)
				if bin == "" {
					continue
				}
				where := fmt.Sprintf("%s container %s (%s)", w.Object, c.Name, strings.Join(c.Command, " "))
				isInit := slices.ContainsFunc(spec.InitContainers, func(ic corev1.Container) bool { return ic.Name == c.Name })
				seen[w.Object.Name+"/"+c.Name] = true
				env := r.environment(t, c, false)
				for name := range env {
					if strings.HasPrefix(name, config.Prefix) && !slices.Contains(variables[bin], name) {
						t.Errorf("%s: sets %s, which kvfleet-%s does not read", where, name, bin)
					}
					if name == "GOMAXPROCS" {
						t.Errorf("%s: sets GOMAXPROCS, which stops Go from following the CPU limit", where)
					}
				}
				for name, v := range env {
					if strings.Contains(v, "$(") {
						t.Errorf("%s: %s keeps an unresolved reference: %s", where, name, v)
					}
				}
				for _, name := range required[bin] {
					if env[name] == "" {
						t.Errorf("%s: %s is required and not set", where, name)
					}
				}
				getenv := func(name string) string { return env[name] }
				var common config.Common
				var err error
				switch bin {
				case "api":
					var cfg config.API
					cfg, err = config.LoadAPI(getenv)
					common = cfg.Common
					if err == nil && !isInit {
						checkPort(t, where, c, "http", cfg.HTTPAddr)
						checkAPIGrace(t, where, spec, c, cfg)
					}
				case "consumer":
					var cfg config.Consumer
					cfg, err = config.LoadConsumer(getenv)
					common = cfg.Common
					if err == nil && !isInit {
						grace := time.Duration(*spec.TerminationGracePeriodSeconds) * time.Second
						if need := cfg.DrainTimeout + cfg.ShutdownTimeout; grace <= need {
							t.Errorf("%s: terminationGracePeriodSeconds %s does not cover the drain and shutdown timeouts (%s)", where, grace, need)
						}
					}
				}
				if err != nil {
					t.Errorf("%s: the binary would not start with this environment:\n%v", where, err)
					continue
				}
				if !isInit {
					checkPort(t, where, c, "ops", common.OpsAddr)
				}
				checkMemory(t, where, c, env["GOMEMLIMIT"])
				if _, ok := c.Resources.Limits[corev1.ResourceCPU]; !ok {
					t.Errorf("%s: no CPU limit for Go to size GOMAXPROCS by", where)
				}
			}
		}
		for _, want := range []string{"api/api", "api/migrate", "consumer/consumer", "consumer/migrate"} {
			if !seen[want] {
				t.Errorf("no application container %s", want)
			}
		}
	})
}

// requiredVariables returns the variables that a loader reports as
// required when the environment is empty.
func requiredVariables(load func(getenv func(string) string) error) []string {
	err := load(func(string) string { return "" })
	if err == nil {
		return nil
	}
	var names []string
	for _, line := range strings.Split(err.Error(), "\n") {
		if name, rest, ok := strings.Cut(line, ": "); ok && strings.HasPrefix(rest, "is required") {
			names = append(names, name)
		}
	}
	return names
}

// checkPort fails unless the container's port named name is the port of
// the address the binary listens on.
func checkPort(t *testing.T, where string, c *corev1.Container, name, addr string) {
	t.Helper()
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		t.Errorf("%s: address %q: %v", where, addr, err)
		return
	}
	for _, p := range c.Ports {
		if p.Name == name {
			if fmt.Sprint(p.ContainerPort) != port {
				t.Errorf("%s: port %s is %d, but the binary listens on %s", where, name, p.ContainerPort, addr)
			}
			return
		}
	}
	t.Errorf("%s: no port named %s (the binary listens on %s)", where, name, addr)
}

// checkAPIGrace: the pod is killed only after the preStop pause, the
// drain delay and the shutdown timeout (api.yaml explains the order).
func checkAPIGrace(t *testing.T, where string, spec *corev1.PodSpec, c *corev1.Container, cfg config.API) {
	t.Helper()
	var pause time.Duration
	if c.Lifecycle == nil || c.Lifecycle.PreStop == nil || c.Lifecycle.PreStop.Sleep == nil {
		t.Errorf("%s: no preStop sleep to leave the Service's endpoints before SIGTERM", where)
	} else {
		pause = time.Duration(c.Lifecycle.PreStop.Sleep.Seconds) * time.Second
	}
	grace := time.Duration(*spec.TerminationGracePeriodSeconds) * time.Second
	if need := pause + cfg.DrainDelay + cfg.ShutdownTimeout; grace <= need {
		t.Errorf("%s: terminationGracePeriodSeconds %s does not cover preStop %s + drain delay %s + shutdown timeout %s",
			where, grace, pause, cfg.DrainDelay, cfg.ShutdownTimeout)
	}
}

// checkMemory: GOMEMLIMIT, when set, leaves the container some room under
// its memory limit.
func checkMemory(t *testing.T, where string, c *corev1.Container, gomemlimit string) {
	t.Helper()
	if gomemlimit == "" {
		return
	}
	soft, err := resource.ParseQuantity(strings.TrimSuffix(gomemlimit, "B"))
	if err != nil {
		t.Errorf("%s: GOMEMLIMIT %q: %v", where, gomemlimit, err)
		return
	}
	limit := c.Resources.Limits[corev1.ResourceMemory]
	if float64(soft.Value()) > 0.9*float64(limit.Value()) {
		t.Errorf("%s: GOMEMLIMIT %s is above 90%% of the memory limit %s", where, gomemlimit, limit.String())
	}
}

// credential names an environment variable that holds a secret.
var credential = regexp.MustCompile(`(?i)(PASSWORD|SECRET|TOKEN|COOKIE|LICENSE|_AUTH$)`)

// userinfo is the password part of a URL.
var userinfo = regexp.MustCompile(`://[^/:@\s]+:([^@\s]*)@`)

// TestNoPlainSecrets: the values of secrets.env appear in the generated
// Secret only, neither in clear nor in base64 anywhere else; no
// credential is written as a literal value; URLs carry their passwords
// only as references to the Secret.
func TestNoPlainSecrets(t *testing.T) {
	forEach(t, func(t *testing.T, r rendering) {
		for _, o := range r.Objects {
			if o.Kind == "Secret" {
				if nested(o.Raw, "stringData") != nil {
					t.Errorf("%s has stringData", o)
				}
				continue
			}
			for k, v := range r.Secrets {
				for _, form := range []string{v, base64.StdEncoding.EncodeToString([]byte(v))} {
					if strings.Contains(string(o.YAML), form) {
						t.Errorf("%s contains the value of %s", o, k)
					}
				}
			}
		}
		for _, w := range r.workloads() {
			for _, c := range allContainers(&w.Template.Spec) {
				for _, e := range c.Env {
					if e.ValueFrom != nil {
						continue
					}
					if credential.MatchString(e.Name) && reference.ReplaceAllString(e.Value, "") != "" {
						t.Errorf("%s container %s: %s is a literal; take it from the Secret", w.Object, c.Name, e.Name)
					}
					for _, m := range userinfo.FindAllStringSubmatch(e.Value, -1) {
						if reference.ReplaceAllString(m[1], "") != "" {
							t.Errorf("%s container %s: %s has a URL with a literal password", w.Object, c.Name, e.Name)
						}
					}
				}
			}
		}
	})
}

// TestNamespace: every object but the Namespace is in the overlays'
// namespace, which enforces the restricted Pod Security Standard.
func TestNamespace(t *testing.T) {
	forEach(t, func(t *testing.T, r rendering) {
		ns, ok := r.find("Namespace", namespace)
		if !ok {
			t.Fatalf("no Namespace %s", namespace)
		}
		if got := ns.Typed.(*corev1.Namespace).Labels["pod-security.kubernetes.io/enforce"]; got != "restricted" {
			t.Errorf("Namespace %s enforces Pod Security %q, want restricted", namespace, got)
		}
		for _, o := range r.Objects {
			if o.Kind != "Namespace" && o.Namespace != namespace {
				t.Errorf("%s is in namespace %q, want %s", o, o.Namespace, namespace)
			}
		}
	})
}

// TestCustomResources checks the cert-manager and KEDA objects by
// structure, as their CRDs require: API version, kind, required fields,
// and references that resolve.
func TestCustomResources(t *testing.T) {
	forEach(t, func(t *testing.T, r rendering) {
		issuers := map[string]bool{}
		for _, o := range r.Objects {
			if o.Kind == "Issuer" {
				issuers[o.Name] = true
			}
		}
		for _, o := range r.Objects {
			if !slices.Contains(customKinds[o.APIVersion], o.Kind) {
				continue
			}
			spec, _ := o.Raw["spec"].(map[string]any)
			if spec == nil {
				t.Errorf("%s has no spec", o)
				continue
			}
			switch o.Kind {
			case "Issuer":
				if spec["selfSigned"] == nil && nested(spec, "ca", "secretName") == nil {
					t.Errorf("%s is neither selfSigned nor a CA issuer with a secretName", o)
				}
			case "Certificate":
				checkCertificate(t, o, spec, issuers)
			case "ScaledObject":
				checkScaledObject(t, r, o, spec)
			}
		}
	})
}

func checkCertificate(t *testing.T, o object, spec map[string]any, issuers map[string]bool) {
	t.Helper()
	if s, _ := spec["secretName"].(string); s == "" {
		t.Errorf("%s has no secretName", o)
	}
	if name, _ := nested(spec, "issuerRef", "name").(string); !issuers[name] {
		t.Errorf("%s: issuer %q is not rendered", o, name)
	}
	if spec["commonName"] == nil && spec["dnsNames"] == nil {
		t.Errorf("%s has neither commonName nor dnsNames", o)
	}
	if o.Name == "cockroach-node" {
		// The names the nodes join and advertise, and the SQL Service.
		dns, _ := spec["dnsNames"].([]any)
		for _, want := range []string{"cockroach-1", "cockroach-2", "cockroach-3", "db-proxy", "localhost"} {
			if !slices.Contains(dns, any(want)) {
				t.Errorf("%s lacks the name %s", o, want)
			}
		}
		if spec["commonName"] != "node" {
			t.Errorf("%s: CockroachDB wants the common name node", o)
		}
	}
}

func checkScaledObject(t *testing.T, r rendering, o object, spec map[string]any) {
	t.Helper()
	name, _ := nested(spec, "scaleTargetRef", "name").(string)
	target, ok := r.find("Deployment", name)
	if !ok {
		t.Errorf("%s: scale target Deployment %q is not rendered", o, name)
	}
	for _, h := range r.Objects {
		if hpa, ok := h.Typed.(*autoscalingv2.HorizontalPodAutoscaler); ok && hpa.Spec.ScaleTargetRef.Name == name {
			t.Errorf("%s and %s both scale %s", o, h, target)
		}
	}
	lo, _ := spec["minReplicaCount"].(float64)
	hi, _ := spec["maxReplicaCount"].(float64)
	if lo < 1 || hi < lo {
		t.Errorf("%s: want 1 <= minReplicaCount <= maxReplicaCount, got %v, %v", o, lo, hi)
	}
	triggers, _ := spec["triggers"].([]any)
	if len(triggers) == 0 {
		t.Errorf("%s has no trigger", o)
	}
	for _, tr := range triggers {
		m, _ := tr.(map[string]any)
		if m["type"] != "prometheus" {
			continue
		}
		addr, _ := nested(m, "metadata", "serverAddress").(string)
		if want := "http://prometheus." + o.Namespace + ".svc:9090"; addr != want {
			t.Errorf("%s: serverAddress %q, want %q (the Service prometheus in this namespace)", o, addr, want)
		}
		for _, k := range []string{"query", "threshold"} {
			if v, _ := nested(m, "metadata", k).(string); v == "" {
				t.Errorf("%s: the prometheus trigger has no %s", o, k)
			}
		}
	}
}
