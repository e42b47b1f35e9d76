import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Ajv } from 'ajv';
import { parse } from 'yaml';
import { describe, expect, it } from 'vitest';
import { CRD_PATH } from './builders.js';

const chart = (p: string): string =>
  fileURLToPath(new URL(`../../charts/berth/${p}`, import.meta.url));

describe('charts/berth', () => {
  it('GIVEN crds/ and the chart WHEN compared THEN the chart carries an identical copy of the Registry CRD', () => {
    expect(readFileSync(chart('crds/registries.berth.dev.yaml'), 'utf8')).toBe(
      readFileSync(CRD_PATH, 'utf8'),
    );
  });

  it('GIVEN values.schema.json WHEN the default values.yaml is checked against it THEN it conforms', () => {
    const schema = JSON.parse(readFileSync(chart('values.schema.json'), 'utf8')) as object;
    const values: unknown = parse(readFileSync(chart('values.yaml'), 'utf8'));
    const validate = new Ajv({ allErrors: true, strict: false }).compile(schema);
    expect(validate(values), JSON.stringify(validate.errors)).toBe(true);
  });

  it('GIVEN values.schema.json WHEN a value has the wrong type or an unknown key THEN it is rejected', () => {
    const schema = JSON.parse(readFileSync(chart('values.schema.json'), 'utf8')) as object;
    const validate = new Ajv({ allErrors: true, strict: false }).compile(schema);
    expect(validate({ replicaCount: 'two' })).toBe(false);
    expect(validate({ sampleRegistry: { bucket: 'Bad_Bucket' } })).toBe(false);
    expect(validate({ typo: true })).toBe(false);
    expect(validate({ networkPolicy: { enabled: 'yes' } })).toBe(false);
    expect(validate({ networkPolicy: { metricsNamespaceSelector: { matchLabel: {} } } })).toBe(
      false,
    );
  });
});
