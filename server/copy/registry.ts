import { request as httpsRequest } from 'node:https';
import type { Readable } from 'node:stream';
import type { Credentials } from '../client/auth.js';
import { RegistryClient } from '../client/registry.js';
import type { Destination, Source } from './transport.js';
import { checkManifest, CopyError, type Descriptor, type Manifest } from './spec.js';

/** RegistryRef is a `docker://` reference: registry host, repository, tag or digest. */
export interface RegistryRef {
  registry: string;
  repository: string;
  tag?: string;
  digest?: string;
}

export interface RegistryOptions {
  credentials?: Credentials;
  /** tlsVerify false accepts any certificate, and plain http when https does not answer. */
  tlsVerify: boolean;
}

/**
 * connect makes a client for `ref.registry`: https, or (with tlsVerify false) https without
 * certificate checks when the registry speaks TLS, else plain http. A loopback registry
 * (`localhost`, `127.x`, `[::1]`) may answer plain http without the flag, as docker and crane
 * allow; one that speaks TLS is still verified.
 */
export async function connect(ref: RegistryRef, o: RegistryOptions): Promise<RegistryClient> {
  const plainHttp = (!o.tlsVerify || isLoopback(ref.registry)) && !(await speaksTls(ref.registry));
  return new RegistryClient({
    registry: ref.registry,
    plainHttp,
    insecure: !o.tlsVerify,
    credentials: o.credentials,
    retries: 3,
    pause: (ms) => new Promise((r) => setTimeout(r, ms)),
  });
}

/** isLoopback: the registry host (port aside) is this machine. */
export function isLoopback(registry: string): boolean {
  const host = registry.startsWith('[')
    ? registry.slice(1, registry.indexOf(']'))
    : registry.replace(/:\d+$/, '');
  return host === 'localhost' || host === '::1' || /^127\.\d+\.\d+\.\d+$/.test(host);
}

function speaksTls(registry: string): Promise<boolean> {
  return new Promise((resolve) => {
    const req = httpsRequest(
      `https://${registry}/v2/`,
      { method: 'GET', rejectUnauthorized: false, timeout: 5000 },
      (res) => {
        res.resume();
        resolve(true);
      },
    );
    req.on('error', () => resolve(false));
    req.on('timeout', () => req.destroy());
    req.end();
  });
}

/** RegistrySource reads through the OCI Distribution API (referrers API for referrers). */
export class RegistrySource implements Source {
  constructor(
    readonly describe: string,
    private readonly client: RegistryClient,
    private readonly ref: RegistryRef,
  ) {}

  async root(): Promise<Manifest> {
    const m = await this.client.getManifest(
      this.ref.repository,
      this.ref.digest ?? this.ref.tag ?? 'latest',
    );
    return checkManifest(m, this.describe);
  }

  async manifest(digest: string): Promise<Manifest> {
    return checkManifest(await this.client.getManifest(this.ref.repository, digest), this.describe);
  }

  blob(d: Descriptor): Promise<Readable> {
    return this.client.openBlob(this.ref.repository, d.digest);
  }

  async referrers(digest: string): Promise<string[]> {
    return (await this.client.referrers(this.ref.repository, digest)).map((r) => r.digest);
  }

  close(): Promise<void> {
    return Promise.resolve();
  }
}

/**
 * RegistryDest writes through the API: blobs the registry already has (HEAD) are skipped,
 * uploads are verified by the registry against their digest, manifests are put by digest and
 * the root also by the reference's tag.
 */
export class RegistryDest implements Destination {
  constructor(
    readonly describe: string,
    private readonly client: RegistryClient,
    private readonly ref: RegistryRef,
  ) {}

  hasBlob(d: Descriptor): Promise<boolean> {
    return this.client.blobExists(this.ref.repository, d.digest);
  }

  async putBlob(d: Descriptor, body: Readable): Promise<void> {
    let opened = false;
    await this.client.pushBlob(this.ref.repository, d.digest, d.size, () => {
      if (opened) throw new CopyError(`${this.describe}: upload of ${d.digest} cannot be retried`);
      opened = true;
      return body;
    });
  }

  async putManifest(m: Manifest): Promise<void> {
    const head = await this.client.headManifest(this.ref.repository, m.digest);
    if (head?.digest === m.digest) return;
    await this.put(m, m.digest);
  }

  async finish(root: Manifest): Promise<void> {
    if (this.ref.digest !== undefined && this.ref.digest !== root.digest)
      throw new CopyError(
        `${this.describe}: the copied manifest is ${root.digest}, not ${this.ref.digest}`,
      );
    if (this.ref.tag === undefined) return;
    const head = await this.client.headManifest(this.ref.repository, this.ref.tag);
    if (head?.digest !== root.digest) await this.put(root, this.ref.tag);
  }

  private async put(m: Manifest, reference: string): Promise<void> {
    const got = await this.client.putManifest(this.ref.repository, reference, m.mediaType, m.body);
    if (got !== undefined && got !== m.digest)
      throw new CopyError(`${this.describe}: the registry stored ${m.digest} as ${got}`);
  }
}
