// Pinned versions of the real parts the tests and benchmarks build from Go modules.
export const TOOLS = {
  minio: 'v0.0.0-20260212201848-7aac2a2c5b7c',
  conformanceModule: 'github.com/opencontainers/distribution-spec/conformance',
  // distribution-spec main, the redesigned suite with data-set toggles.
  conformanceMain: 'v0.0.0-20260831232431-97274622c111',
};
