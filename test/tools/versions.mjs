// Pinned versions of the real parts the tests and benchmarks build from Go modules.
export const TOOLS = {
  minio: 'v0.0.0-20260212201848-7aac2a2c5b7c',
  conformanceModule: 'github.com/opencontainers/distribution-spec/conformance',
  // distribution-spec main, the redesigned suite with data-set toggles.
  conformanceMain: 'v0.0.0-20260831232431-97274622c111',
  // Control plane for operator tests: kube-apiserver and kube-controller-manager built from
  // k8s.io/kubernetes through a generated wrapper module (staging modules at v0.<minor>.<patch>),
  // and etcd from go.etcd.io/etcd/server/v3 at the release envtest pairs with 1.36.
  kubernetes: 'v1.36.3',
  etcd: 'v3.6.8',
  helm: 'v3.22.0',
  // The resource metrics API for the HPA test on the real node (issue 16). v0.9.1 needs
  // go >= 1.26.10; this workplace has 1.26.8, and v0.9.0 builds against k8s.io v0.36.
  metricsServer: 'v0.9.0',
  // Benchmark peers (issue #5). zot's module is zotregistry.dev/zot/v2 only from v2.1.10 on
  // (earlier tags declare zotregistry.dev/zot, so the proxy refuses them under /v2).
  // On this workplace the proxy answered 403 Forbidden for zotregistry.dev/zot/v2 at every
  // release v2.1.10..v2.1.20 (and for zotregistry.dev/zot@v2.1.0), so ensure.mjs cannot build
  // zot and zb; the published runs used binaries built by hand (docs/benchmarks.md).
  distribution: 'v3.1.2',
  zot: 'v2.1.20',
  // A real client of the pull-through cache (issue 17): crane pulls through the mirror in
  // test/integration/mirror.int.test.ts.
  crane: 'v0.22.1',
};
