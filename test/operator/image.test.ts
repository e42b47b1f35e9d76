import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { desiredState } from '../../operator/desired/index.js';
import { operatorImage, packageVersion, withImage } from '../../operator/image.js';
import type { V1DaemonSet, V1Deployment } from '@kubernetes/client-node';
import { aRegistry } from './builders.js';

const version = (
  JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as {
    version: string;
  }
).version;

describe("the operator's image for unpinned Registries", () => {
  it('GIVEN the CRD WHEN a Registry without spec.image is defaulted THEN no image is filled in (nothing pins it in storage)', () => {
    expect(aRegistry().build().spec.image).toBeUndefined();
  });

  it('GIVEN BERTH_IMAGE WHEN the operator image is asked for THEN it is used; unset or blank THEN the release image of the package version', () => {
    expect(operatorImage({ BERTH_IMAGE: 'registry.example/berth:2.0.0' })).toBe(
      'registry.example/berth:2.0.0',
    );
    expect(packageVersion()).toBe(version);
    expect(operatorImage({})).toBe(`ghcr.io/berth-dev/berth:${version}`);
    expect(operatorImage({ BERTH_IMAGE: ' ' })).toBe(`ghcr.io/berth-dev/berth:${version}`);
  });

  it('GIVEN an unpinned, an empty and a pinned spec.image WHEN resolved against a new operator image THEN the first two follow it and the pinned one stays', () => {
    const next = 'ghcr.io/berth-dev/berth:0.2.0';
    expect(withImage(aRegistry().build(), next).spec.image).toBe(next);
    expect(withImage(aRegistry().with({ image: '' }).build(), next).spec.image).toBe(next);
    const pinned = aRegistry().with({ image: 'mirror.local/berth:0.1.0' }).build();
    expect(withImage(pinned, next).spec.image).toBe('mirror.local/berth:0.1.0');
    expect(withImage(pinned, next)).toBe(pinned);
  });

  it('GIVEN an unpinned Registry with node access WHEN rendered after an operator upgrade THEN the Deployment and the node-access DaemonSet run the new image', () => {
    const r = aRegistry().withNodeAccess({ enabled: true, nodePort: 30500 }).build();
    const images = (operator: string) => {
      const st = desiredState(withImage(r, operator), {
        httpSecret: 's',
        serviceMonitorApi: false,
      });
      if (!st.ok) throw new Error(st.problems.join('; '));
      const d = st.children.find((c) => c.kind === 'Deployment') as V1Deployment;
      const ds = st.nodeAccess.find((c) => c.kind === 'DaemonSet') as V1DaemonSet;
      return [
        d.spec?.template.spec?.containers[0]?.image,
        ds.spec?.template.spec?.containers[0]?.image,
      ];
    };
    expect(images('berth:0.1.0')).toEqual(['berth:0.1.0', 'berth:0.1.0']);
    expect(images('berth:0.2.0')).toEqual(['berth:0.2.0', 'berth:0.2.0']);
  });
});
