import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { authConfig, basic } from '../support/auth.js';
import { image, type Built } from '../support/image.js';
import type { BerthProcess } from '../support/process.js';
import { buildUi, clientAs, launchChromium, SCREENSHOTS, startBerth } from './support.js';

// The storage line on a repository's page and the admin garbage collection page, in headless
// Chromium against a real `berth server` with a retention policy.

const AXE = readFileSync(createRequire(import.meta.url).resolve('axe-core/axe.min.js'), 'utf8');
const GRACE_SECONDS = 1;

let berth: BerthProcess;
let browser: Browser;
let old: Built;
let fresh: Built;
const errors: string[] = [];

beforeAll(async () => {
  buildUi();
  const auth = authConfig('htpasswd', 4)
    .user('alice', 'alice-pw')
    .user('bob', 'bob-pw')
    .rule({ users: ['alice'], repositories: ['**'], actions: ['pull', 'push', 'delete'] })
    .rule({ users: ['bob'], repositories: ['team/**'], actions: ['pull'] })
    .build();
  auth.admins.users.push('alice');
  berth = await startBerth(auth, {
    gc: {
      graceSeconds: GRACE_SECONDS,
      policies: [
        {
          repositories: ['team/**'],
          keepTags: [{ mostRecentlyPushed: 1 }],
          deleteUntaggedAfterSeconds: 86400,
        },
      ],
    },
  });
  const alice = clientAs(berth.url, 'alice', 'alice-pw');
  old = image().layer(3000).build();
  fresh = image().layer(5000).build();
  expect((await alice.push('private/app', 'v1', image().layer(700).build())).status).toBe(201);
  expect((await alice.push('team/app', 'old', old)).status).toBe(201);
  // Pushed times order the tags for `mostRecentlyPushed`.
  await new Promise((r) => setTimeout(r, 1100));
  expect((await alice.push('team/app', 'new', fresh)).status).toBe(201);
  // A real server on the real clock: the dry run considers only what is older than the grace.
  await new Promise((r) => setTimeout(r, GRACE_SECONDS * 1000 + 1100));
  browser = await launchChromium();
}, 120_000);

afterAll(async () => {
  await browser?.close();
  await berth?.kill();
});

async function signedIn(user: string, password: string): Promise<Page> {
  const ctx = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  const page = await ctx.newPage();
  page.on('request', (req) => {
    if (!req.url().startsWith(berth.url)) throw new Error(`external request: ${req.url()}`);
  });
  page.on('pageerror', (err) => errors.push(err.message));
  await page.goto(`${berth.url}/ui/#/signin`);
  await page.getByLabel('User name').fill(user);
  await page.getByLabel('Password').fill(password);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.getByText(`Signed in as ${user}`).waitFor();
  return page;
}

describe('storage and garbage collection views', () => {
  it('GIVEN a repository WHEN its page opens THEN the storage it uses is shown, as the API counts it', async () => {
    const bob = await signedIn('bob', 'bob-pw');
    await bob.goto(`${berth.url}/ui/#/r/team%2Fapp`);
    const line = bob.getByTestId('storage');
    await line.waitFor();
    const api = (await (
      await fetch(`${berth.url}/v2/_berth/storage/team/app`, {
        headers: { authorization: basic('bob', 'bob-pw') },
      })
    ).json()) as { blobs: number; manifests: number };
    expect(api.blobs).toBe(old.blobs.length + fresh.blobs.length);
    expect(await line.textContent()).toContain(
      `in ${api.blobs} blobs and ${api.manifests} manifests`,
    );
  });

  it('GIVEN the storage overview WHEN each user opens it THEN it lists only the repositories each may pull, with what each stores', async () => {
    const bob = await signedIn('bob', 'bob-pw');
    await bob.getByRole('link', { name: 'Storage', exact: true }).click();
    const table = bob.getByRole('table', { name: 'Storage per repository' });
    await table.waitFor();
    const row = table.getByRole('row', { name: /^team\/app / });
    await expect
      .poll(() => row.getByRole('cell').allTextContents())
      .toEqual([
        '2',
        '2',
        String(old.blobs.length + fresh.blobs.length),
        expect.stringMatching(/KiB$/),
      ]);
    expect(await table.getByRole('row').count()).toBe(2); // header + team/app
    const alice = await signedIn('alice', 'alice-pw');
    await alice.goto(`${berth.url}/ui/#/storage`);
    const all = alice.getByRole('table', { name: 'Storage per repository' });
    await all.getByRole('link', { name: 'private/app' }).waitFor();
    expect(await all.getByRole('row').count()).toBe(3);
    await alice.screenshot({ path: join(SCREENSHOTS, 'storage.png'), fullPage: true });
  });

  it('GIVEN an admin WHEN the garbage collection page opens THEN the policy and a dry run naming the older tag show, and nothing is deleted', async () => {
    const alice = await signedIn('alice', 'alice-pw');
    await alice.getByRole('link', { name: 'Garbage collection' }).click();
    await alice.getByRole('heading', { name: 'Garbage collection', level: 1 }).waitFor();
    const policies = alice.getByRole('list', { name: 'Retention policies, first match applies' });
    await policies.getByText('keep the 1 most recently pushed tags').waitFor();
    await policies.getByText('delete untagged manifests after 1 d').waitFor();
    const summary = alice.getByTestId('gc-summary');
    await summary.waitFor();
    expect(await summary.textContent()).toContain('1 tag');
    await alice.getByRole('link', { name: 'team/app:old' }).waitFor();
    expect(await alice.getByRole('link', { name: 'team/app:new' }).count()).toBe(0);
    await alice.screenshot({ path: join(SCREENSHOTS, 'admin-gc.png'), fullPage: true });
    await alice.evaluate(AXE);
    // A string expression: it runs in the page, where axe now is.
    const violations = await alice.evaluate<string[]>(
      `axe.run({ runOnly: ['wcag2a', 'wcag2aa', 'best-practice'] }).then((r) => r.violations
        .filter((v) => v.impact === 'serious' || v.impact === 'critical').map((v) => v.id))`,
    );
    expect(violations).toEqual([]);
    const tags = await fetch(`${berth.url}/v2/team/app/tags/list`, {
      headers: { authorization: basic('alice', 'alice-pw') },
    });
    expect(((await tags.json()) as { tags: string[] }).tags).toEqual(['new', 'old']);
  });

  it('GIVEN a user who is not an admin WHEN the garbage collection page is opened by its link THEN no link is offered and the API refuses it', async () => {
    const bob = await signedIn('bob', 'bob-pw');
    await bob.getByRole('list', { name: 'Repositories' }).waitFor();
    expect(await bob.getByRole('link', { name: 'Garbage collection' }).count()).toBe(0);
    await bob.goto(`${berth.url}/ui/#/admin`);
    await bob.getByRole('alert').getByText('You may not see this.').waitFor();
    expect(await bob.getByTestId('gc-summary').count()).toBe(0);
  });

  it('GIVEN the pages above WHEN reviewed THEN no script error happened', () => {
    expect(errors).toEqual([]);
  });
});
