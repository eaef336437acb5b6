// Package e2e tests a running Compose fleet from the outside, through nginx
// only, as a client would. Its tests carry the "e2e" build tag and need the
// fleet up (make e2e brings it up and down); KVFLEET_E2E_URL names the
// entry point (default http://127.0.0.1:8000).
package e2e
