package chaos

import (
	"slices"
	"strings"
	"testing"
)

func TestParseContainers(t *testing.T) {
	out := strings.Join([]string{
		"bbb|/kvfleet-api-2|api|2|running|0|healthy|4242|unless-stopped|bbb12|3|true",
		"ccc|/kvfleet-migrate-1|migrate|1|exited|0||0|on-failure|ccc12|0|false",
		"aaa|/kvfleet-api-1|api|1|running|0|starting|4241|unless-stopped|aaa12|0|false",
		"ddd|/kvfleet-rabbitmq-1-1|rabbitmq-1|1|running|0|healthy|99|unless-stopped|rabbitmq-1|0|false",
		"",
	}, "\n")
	cs, err := parseContainers(out)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, c := range cs {
		got = append(got, c.Label())
	}
	if want := []string{"api#1", "api#2", "migrate", "rabbitmq-1"}; !slices.Equal(got, want) {
		t.Fatalf("containers %v, want %v (sorted by service and number)", got, want)
	}
	api2 := cs[1]
	if api2.ID != "bbb" || api2.Name != "kvfleet-api-2" || api2.Pid != 4242 || api2.Health != "healthy" || api2.Restart != "unless-stopped" ||
		api2.Restarts != 3 || !api2.OOMKilled {
		t.Fatalf("api#2 = %+v", api2)
	}
	if cs[3].Hostname != "rabbitmq-1" {
		t.Fatalf("rabbitmq-1 hostname %q", cs[3].Hostname)
	}
	if _, err := parseContainers("a|b|c\n"); err == nil {
		t.Fatal("parseContainers accepted a short line")
	}
}

func TestContainerReady(t *testing.T) {
	cases := []struct {
		c    Container
		want bool
	}{
		{Container{Status: "running", Health: "healthy"}, true},
		{Container{Status: "running"}, true}, // no healthcheck
		{Container{Status: "running", Health: "starting"}, false},
		{Container{Status: "running", Health: "unhealthy"}, false},
		{Container{Status: "restarting"}, false},
		{Container{Status: "exited", ExitCode: 0, Restart: "on-failure"}, true}, // a finished job
		{Container{Status: "exited", ExitCode: 1, Restart: "on-failure"}, false},
		{Container{Status: "exited", ExitCode: 0, Restart: "unless-stopped"}, false}, // a stopped service
		{Container{Status: "exited", ExitCode: 137, Restart: "unless-stopped"}, false},
		{Container{Status: "created"}, false},
	}
	for _, tc := range cases {
		if got := tc.c.Ready(); got != tc.want {
			t.Errorf("Ready(%+v) = %v, want %v", tc.c, got, tc.want)
		}
	}
}

func TestParseMasterAddr(t *testing.T) {
	if host, err := parseMasterAddr("redis-replica-2\n6379\n"); err != nil || host != "redis-replica-2" {
		t.Fatalf("parseMasterAddr = %q, %v", host, err)
	}
	for _, bad := range []string{"", "(nil)\n", "redis-master\n", "redis-master\nport\n", "NOAUTH Authentication required.\n"} {
		if host, err := parseMasterAddr(bad); err == nil {
			t.Errorf("parseMasterAddr(%q) = %q, want an error", bad, host)
		}
	}
}

func TestParseQueueLeader(t *testing.T) {
	out := `[
{"name":"kvfleet.writes.dead","leader":"rabbit@rabbitmq-1"}
,{"name":"kvfleet.writes","leader":"rabbit@rabbitmq-2"}
]`
	if host, err := parseQueueLeader(out, "kvfleet.writes"); err != nil || host != "rabbitmq-2" {
		t.Fatalf("parseQueueLeader = %q, %v; want rabbitmq-2", host, err)
	}
	for name, bad := range map[string]string{
		"no such queue": `[{"name":"other","leader":"rabbit@x"}]`,
		"no leader":     `[{"name":"kvfleet.writes","leader":""}]`,
		"not json":      "Error: unable to perform an operation on node",
	} {
		if host, err := parseQueueLeader(bad, "kvfleet.writes"); err == nil {
			t.Errorf("%s: parseQueueLeader = %q, want an error", name, host)
		}
	}
}

func TestNginxConfig(t *testing.T) {
	cases := []struct{ inspect, want string }{
		{`["nginx","-c","/etc/kvfleet/nginx.conf","-g","daemon off;"]|null`, "/etc/kvfleet/nginx.conf"},
		{`["/docker-entrypoint.sh"]|["nginx","-c","/etc/kvfleet/nginx/nginx.conf","-g","daemon off;"]`, "/etc/kvfleet/nginx/nginx.conf"},
		{`["nginx","-c/etc/x.conf"]|null`, "/etc/x.conf"},
		{`["/docker-entrypoint.sh"]|["nginx","-g","daemon off;"]`, ""},
	}
	for _, tc := range cases {
		if got := nginxConfig(tc.inspect); got != tc.want {
			t.Errorf("nginxConfig(%s) = %q, want %q", tc.inspect, got, tc.want)
		}
	}
}

func TestComposeArgs(t *testing.T) {
	labels := "/srv/kvfleet|/srv/kvfleet/docker-compose.yml,/srv/kvfleet/override.yml|/srv/kvfleet/.env.chaos"
	got, err := composeArgs("kvfleet-chaos", labels, "")
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"--project-name", "kvfleet-chaos", "--project-directory", "/srv/kvfleet",
		"--file", "/srv/kvfleet/docker-compose.yml", "--file", "/srv/kvfleet/override.yml", "--env-file", "/srv/kvfleet/.env.chaos"}
	if !slices.Equal(got, want) {
		t.Fatalf("composeArgs = %v\nwant %v", got, want)
	}
	// KVFLEET_ENV_FILE is relative to the project directory, as in start.sh.
	got, _ = composeArgs("p", labels, ".env.other")
	if got[len(got)-1] != "/srv/kvfleet/.env.other" {
		t.Fatalf("relative env file override: %v", got)
	}
	got, _ = composeArgs("p", labels, "/abs/.env")
	if got[len(got)-1] != "/abs/.env" {
		t.Fatalf("absolute env file override: %v", got)
	}
	if _, err := composeArgs("p", "||", ""); err == nil {
		t.Fatal("composeArgs accepted containers without Compose labels")
	}
}
