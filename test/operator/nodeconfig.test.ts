import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { EventEmitter } from 'node:events';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Logger } from '../../operator/log.js';
import {
  NodeConfigAgent,
  nodeConfigCommand,
  parseNodeConfigArgs,
  UsageError,
} from '../../operator/nodeconfig.js';
import { FakeClock } from './fake-clock.js';

const quiet: Logger = { debug: () => {}, info: () => {}, warn: () => {}, error: () => {} };

let root: string;
let containerd: string;
let crio: string;
beforeEach(async () => {
  root = await mkdtemp(join(tmpdir(), 'berth-nodeconfig-'));
  containerd = join(root, 'certs.d');
  crio = join(root, 'registries.conf.d');
  await mkdir(containerd);
  await mkdir(crio);
});
afterEach(async () => {
  await rm(root, { recursive: true, force: true });
});

const baseArgs = () => [
  '--address',
  'localhost:30500',
  '--name',
  'team-a/images',
  '--containerd-dir',
  containerd,
  '--crio-dir',
  crio,
];

/** flush lets the agent's file I/O, started by a fired timer, finish. */
async function tick(clock: FakeClock, agent: NodeConfigAgent, ms: number): Promise<void> {
  clock.advance(ms);
  await agent.settled();
}

describe('node-config flags', () => {
  it('GIVEN valid flags WHEN parsed THEN the options carry them with http as the default scheme', () => {
    expect(parseNodeConfigArgs(baseArgs())).toEqual({
      address: 'localhost:30500',
      scheme: 'http',
      namespace: 'team-a',
      name: 'images',
      containerdDir: containerd,
      crioDir: crio,
    });
    expect(
      parseNodeConfigArgs(['--address', '[fd00::1]:5000', '--name', 'a/b', '--crio-dir', crio])
        .address,
    ).toBe('[fd00::1]:5000');
  });

  it.each([
    [['--address', 'localhost', '--name', 'a/b', '--crio-dir', '/x'], '--address'],
    [['--address', 'a/../b:1', '--name', 'a/b', '--crio-dir', '/x'], '--address'],
    [['--address', 'h:70000', '--name', 'a/b', '--crio-dir', '/x'], '--address'],
    [['--name', 'a/b', '--crio-dir', '/x'], '--address'],
    [['--address', 'h:1', '--name', 'a', '--crio-dir', '/x'], '--name'],
    [['--address', 'h:1', '--name', 'a/b', '--scheme', 'ftp', '--crio-dir', '/x'], '--scheme'],
    [['--address', 'h:1', '--name', 'a/b', '--crio-dir', 'relative'], '--crio-dir'],
    [['--address', 'h:1', '--name', 'a/b', '--containerd-dir', '/a/../etc'], '--containerd-dir'],
    [['--address', 'h:1', '--name', 'a/b'], '--containerd-dir'],
    [['--address', 'h:1', '--name', 'a/b', '--crio-dir', '/x', '--bogus', '1'], '--bogus'],
    [['--address', 'h:1', '--name', 'a/b', '--crio-dir'], '--crio-dir'],
  ])('GIVEN bad flags %j WHEN parsed THEN the error names %s', (args, flag) => {
    let err: unknown;
    try {
      parseNodeConfigArgs(args);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(UsageError);
    expect((err as UsageError).flag).toBe(flag);
    expect((err as UsageError).message).toContain(flag);
  });

  it('GIVEN a bad flag WHEN the command runs THEN it exits 2 with a message naming the flag', async () => {
    let out = '';
    const code = await nodeConfigCommand(['--address', 'nope'], {
      log: quiet,
      stderr: (s) => (out += s),
    });
    expect(code).toBe(2);
    expect(out).toMatch(/^berth node-config: --address must be host:port/);
    expect(out).toContain('usage: berth node-config');
  });
});

describe('node-config agent', () => {
  it('GIVEN http WHEN synced THEN containerd hosts.toml and the CRI-O drop-in say so, insecure, with no ca', async () => {
    const agent = new NodeConfigAgent(parseNodeConfigArgs(baseArgs()), quiet, {
      clock: new FakeClock(),
    });
    await agent.start();
    const hosts = await readFile(join(containerd, 'localhost:30500', 'hosts.toml'), 'utf8');
    expect(hosts).toContain('server = "http://localhost:30500"');
    expect(hosts).toContain(
      '[host."http://localhost:30500"]\n  capabilities = ["pull", "resolve"]',
    );
    expect(hosts).not.toContain('ca =');
    const conf = await readFile(join(crio, 'berth-team-a-images.conf'), 'utf8');
    expect(conf).toContain('[[registry]]\nlocation = "localhost:30500"\ninsecure = true\n');
    expect(await readdir(join(containerd, 'localhost:30500'))).toEqual(['hosts.toml']);
    await agent.stop();
  });

  it('GIVEN https and a CA file WHEN synced THEN ca.crt is written beside hosts.toml and named by its host path; CRI-O is not insecure', async () => {
    const caFile = join(root, 'ca.crt');
    await writeFile(caFile, 'PEM');
    const o = parseNodeConfigArgs([...baseArgs(), '--scheme', 'https', '--ca-file', caFile]);
    const agent = new NodeConfigAgent(o, quiet, { clock: new FakeClock() });
    await agent.start();
    const dir = join(containerd, 'localhost:30500');
    expect(await readFile(join(dir, 'ca.crt'), 'utf8')).toBe('PEM');
    const hosts = await readFile(join(dir, 'hosts.toml'), 'utf8');
    expect(hosts).toContain('server = "https://localhost:30500"');
    expect(hosts).toContain(`ca = "${join(dir, 'ca.crt')}"`);
    expect(await readFile(join(crio, 'berth-team-a-images.conf'), 'utf8')).toContain(
      'insecure = false',
    );
    await agent.stop();
  });

  it('GIVEN a CA file that is absent WHEN synced THEN hosts.toml has no ca; WHEN it appears THEN the next check adds it', async () => {
    const caFile = join(root, 'later.crt');
    const clock = new FakeClock();
    const o = parseNodeConfigArgs([...baseArgs(), '--scheme', 'https', '--ca-file', caFile]);
    const agent = new NodeConfigAgent(o, quiet, { clock });
    await agent.start();
    const dir = join(containerd, 'localhost:30500');
    expect(await readFile(join(dir, 'hosts.toml'), 'utf8')).not.toContain('ca =');
    await writeFile(caFile, 'PEM2');
    await tick(clock, agent, 30_000);
    expect(await readFile(join(dir, 'hosts.toml'), 'utf8')).toContain('ca = ');
    expect(await readFile(join(dir, 'ca.crt'), 'utf8')).toBe('PEM2');
    await agent.stop();
  });

  it('GIVEN written files WHEN they vanish THEN nothing happens before 30 s and they are back after it, with no temp file left', async () => {
    const clock = new FakeClock();
    const agent = new NodeConfigAgent(parseNodeConfigArgs(baseArgs()), quiet, { clock });
    await agent.start();
    const hosts = join(containerd, 'localhost:30500', 'hosts.toml');
    const conf = join(crio, 'berth-team-a-images.conf');
    await rm(hosts);
    await rm(conf);
    await tick(clock, agent, 29_999);
    expect(existsSync(hosts)).toBe(false);
    await tick(clock, agent, 1);
    expect(existsSync(hosts)).toBe(true);
    expect(existsSync(conf)).toBe(true);
    expect(clock.pending()).toBe(1);
    expect(await readdir(crio)).toEqual(['berth-team-a-images.conf']);
    await agent.stop();
    expect(clock.pending()).toBe(0);
  });

  it('GIVEN a file changed by someone else WHEN checked THEN it is rewritten', async () => {
    const clock = new FakeClock();
    const agent = new NodeConfigAgent(parseNodeConfigArgs(baseArgs()), quiet, { clock });
    await agent.start();
    const conf = join(crio, 'berth-team-a-images.conf');
    const want = await readFile(conf, 'utf8');
    await writeFile(conf, 'garbage');
    await tick(clock, agent, 30_000);
    expect(await readFile(conf, 'utf8')).toBe(want);
    await agent.stop();
  });

  it('GIVEN the agent made the address folder WHEN stopped THEN its files and the folder are gone and other files stay', async () => {
    await writeFile(join(crio, 'other.conf'), 'x');
    await mkdir(join(containerd, 'other:5000'));
    const agent = new NodeConfigAgent(parseNodeConfigArgs(baseArgs()), quiet, {
      clock: new FakeClock(),
    });
    await agent.start();
    await agent.stop();
    expect((await readdir(containerd)).sort()).toEqual(['other:5000']);
    expect(await readdir(crio)).toEqual(['other.conf']);
  });

  it('GIVEN an address folder that existed and holds another file WHEN stopped THEN only hosts.toml is removed', async () => {
    const dir = join(containerd, 'localhost:30500');
    await mkdir(dir);
    await writeFile(join(dir, 'keep.pem'), 'x');
    const agent = new NodeConfigAgent(parseNodeConfigArgs(baseArgs()), quiet, {
      clock: new FakeClock(),
    });
    await agent.start();
    await agent.stop();
    expect(await readdir(dir)).toEqual(['keep.pem']);
  });

  it('GIVEN the command running WHEN SIGTERM arrives THEN it removes its files and exits 0', async () => {
    const signals = new EventEmitter();
    const clock = new FakeClock();
    let started: () => void = () => undefined;
    const inPlace = new Promise<void>((resolve) => (started = resolve));
    const done = nodeConfigCommand(baseArgs(), { log: quiet, clock, signals, started });
    await inPlace;
    expect(existsSync(join(containerd, 'localhost:30500', 'hosts.toml'))).toBe(true);
    signals.emit('SIGTERM');
    expect(await done).toBe(0);
    expect(await readdir(containerd)).toEqual([]);
    expect(await readdir(crio)).toEqual([]);
    expect(signals.listenerCount('SIGTERM') + signals.listenerCount('SIGINT')).toBe(0);
  });

  it('GIVEN a folder it cannot write WHEN the command starts THEN it exits 1', async () => {
    const file = join(root, 'not-a-dir');
    await writeFile(file, 'x');
    const code = await nodeConfigCommand(
      ['--address', 'h:1', '--name', 'a/b', '--containerd-dir', file],
      { log: quiet, clock: new FakeClock(), signals: new EventEmitter() },
    );
    expect(code).toBe(1);
  });
});

describe('node-config as a mirror for upstream hosts', () => {
  const mirrorArgs = (...extra: string[]) => [
    ...baseArgs(),
    '--mirror-for',
    'docker.io,ghcr.io',
    ...extra,
  ];

  it('GIVEN --mirror-for WHEN parsed THEN the options list each host once', () => {
    expect(
      parseNodeConfigArgs([...baseArgs(), '--mirror-for', 'docker.io,ghcr.io,docker.io']).mirrorFor,
    ).toEqual(['docker.io', 'ghcr.io']);
    expect(parseNodeConfigArgs(baseArgs()).mirrorFor).toBeUndefined();
  });

  it.each([
    [['--mirror-for', 'Docker.IO']],
    [['--mirror-for', 'docker.io,']],
    [['--mirror-for', '../etc']],
    [['--mirror-for', 'a..b']],
    [['--mirror-for', 'localhost:30500']],
  ])('GIVEN a bad upstream host %j WHEN parsed THEN the error names --mirror-for', (extra) => {
    expect(() => parseNodeConfigArgs([...baseArgs(), ...extra])).toThrow(
      expect.objectContaining({ flag: '--mirror-for' }) as Error,
    );
  });

  it('GIVEN --mirror-for without --containerd-dir WHEN parsed THEN the error names --mirror-for', () => {
    expect(() =>
      parseNodeConfigArgs([
        ...['--address', 'h:1', '--name', 'a/b', '--crio-dir', crio],
        ...['--mirror-for', 'docker.io'],
      ]),
    ).toThrow(/--mirror-for needs --containerd-dir/);
  });

  it('GIVEN http WHEN synced THEN each upstream host has a hosts.toml naming the registry first and the upstream as the fallback server', async () => {
    const agent = new NodeConfigAgent(parseNodeConfigArgs(mirrorArgs()), quiet, {
      clock: new FakeClock(),
    });
    await agent.start();
    const docker = await readFile(join(containerd, 'docker.io', 'hosts.toml'), 'utf8');
    expect(docker).toBe(
      [
        '# Written by berth node-config for Registry team-a/images as a mirror of docker.io; removed when it stops.',
        'server = "https://registry-1.docker.io"',
        '',
        '[host."http://localhost:30500"]',
        '  capabilities = ["pull", "resolve"]',
        '',
      ].join('\n'),
    );
    const ghcr = await readFile(join(containerd, 'ghcr.io', 'hosts.toml'), 'utf8');
    expect(ghcr).toContain('server = "https://ghcr.io"');
    expect(ghcr).toContain('[host."http://localhost:30500"]\n  capabilities = ["pull", "resolve"]');
    // The CRI-O drop-in is unchanged: the mirror is containerd's only.
    expect(await readdir(crio)).toEqual(['berth-team-a-images.conf']);
    await agent.stop();
  });

  it('GIVEN https and a CA file WHEN synced THEN the mirror entries trust the ca.crt beside the registry hosts.toml', async () => {
    const caFile = join(root, 'ca.crt');
    await writeFile(caFile, 'PEM');
    const o = parseNodeConfigArgs(mirrorArgs('--scheme', 'https', '--ca-file', caFile));
    const agent = new NodeConfigAgent(o, quiet, { clock: new FakeClock() });
    await agent.start();
    const docker = await readFile(join(containerd, 'docker.io', 'hosts.toml'), 'utf8');
    expect(docker).toContain('[host."https://localhost:30500"]');
    expect(docker).toContain(`ca = "${join(containerd, 'localhost:30500', 'ca.crt')}"`);
    expect(await readdir(join(containerd, 'docker.io'))).toEqual(['hosts.toml']);
    await agent.stop();
  });

  it('GIVEN mirror files written WHEN one vanishes THEN the next check brings it back; WHEN stopped THEN every file and folder it made is gone and a folder that existed stays', async () => {
    await mkdir(join(containerd, 'ghcr.io'));
    await writeFile(join(containerd, 'ghcr.io', 'keep.pem'), 'x');
    const clock = new FakeClock();
    const agent = new NodeConfigAgent(parseNodeConfigArgs(mirrorArgs()), quiet, { clock });
    await agent.start();
    const docker = join(containerd, 'docker.io', 'hosts.toml');
    await rm(docker);
    await tick(clock, agent, 30_000);
    expect(existsSync(docker)).toBe(true);
    await agent.stop();
    expect(await readdir(containerd)).toEqual(['ghcr.io']);
    expect(await readdir(join(containerd, 'ghcr.io'))).toEqual(['keep.pem']);
  });

  it("GIVEN an upstream hosts.toml the node's owner wrote WHEN synced and stopped THEN it is left as it was and the other host is still mirrored", async () => {
    const mine = join(containerd, 'docker.io', 'hosts.toml');
    await mkdir(join(containerd, 'docker.io'));
    await writeFile(mine, 'server = "https://my-mirror.example"\n');
    const warned: string[] = [];
    const log: Logger = { ...quiet, warn: (_f, msg) => warned.push(msg) };
    const clock = new FakeClock();
    const agent = new NodeConfigAgent(parseNodeConfigArgs(mirrorArgs()), log, { clock });
    await agent.start();
    await tick(clock, agent, 30_000);
    expect(await readFile(mine, 'utf8')).toBe('server = "https://my-mirror.example"\n');
    expect(warned).toEqual(['node config left alone: written by someone else']);
    expect(existsSync(join(containerd, 'ghcr.io', 'hosts.toml'))).toBe(true);
    await agent.stop();
    expect(await readFile(mine, 'utf8')).toBe('server = "https://my-mirror.example"\n');
    expect((await readdir(containerd)).sort()).toEqual(['docker.io']);
  });

  it('GIVEN docker.io mirrored by another Registry whose name starts the same WHEN synced and stopped THEN its file is left alone', async () => {
    const other = new NodeConfigAgent(
      parseNodeConfigArgs([...mirrorArgs(), '--name', 'team-a/images2']),
      quiet,
      { clock: new FakeClock() },
    );
    await other.start();
    const docker = join(containerd, 'docker.io', 'hosts.toml');
    const theirs = await readFile(docker, 'utf8');
    expect(theirs).toContain('Registry team-a/images2 as a mirror of docker.io;');
    const agent = new NodeConfigAgent(parseNodeConfigArgs(mirrorArgs()), quiet, {
      clock: new FakeClock(),
    });
    await agent.start();
    expect(await readFile(docker, 'utf8')).toBe(theirs);
    await agent.stop();
    expect(await readFile(docker, 'utf8')).toBe(theirs);
    await other.stop();
    expect(existsSync(docker)).toBe(false);
  });

  it('GIVEN the command running with --mirror-for WHEN SIGTERM arrives THEN the mirror files are removed too', async () => {
    const signals = new EventEmitter();
    let started: () => void = () => undefined;
    const inPlace = new Promise<void>((resolve) => (started = resolve));
    const done = nodeConfigCommand(mirrorArgs(), {
      log: quiet,
      clock: new FakeClock(),
      signals,
      started,
    });
    await inPlace;
    expect((await readdir(containerd)).sort()).toEqual(['docker.io', 'ghcr.io', 'localhost:30500']);
    signals.emit('SIGTERM');
    expect(await done).toBe(0);
    expect(await readdir(containerd)).toEqual([]);
  });
});
