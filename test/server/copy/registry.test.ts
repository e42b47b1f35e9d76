import { describe, expect, it } from 'vitest';
import { isLoopback } from '../../../server/copy/registry.js';

describe('isLoopback', () => {
  it('GIVEN registry hosts WHEN asked whether they are this machine THEN only loopback names and addresses are', () => {
    for (const r of [
      'localhost',
      'localhost:5000',
      '127.0.0.1:5000',
      '127.1.2.3',
      '[::1]:5000',
      '[::1]',
    ])
      expect(isLoopback(r), r).toBe(true);
    for (const r of ['registry.example', '10.0.0.1:5000', 'localhost.example:5000', '[::2]:5000'])
      expect(isLoopback(r), r).toBe(false);
  });
});
