import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { authConfig, basic } from '../support/auth.js';
import { Client, image } from '../support/image.js';
import type { BerthProcess } from '../support/process.js';
import { buildUi, launchChromium, startBerth } from './support.js';

// The web UI against a real `berth server` in token mode with Berth's own issuer: the UI answers
// each Bearer challenge at /auth/token with the signed-in user's credentials, as docker does.

let berth: BerthProcess;
let browser: Browser;
const errors: string[] = [];

/** tokenFetch calls the server as `user`, answering Bearer challenges at its token endpoint. */
function tokenFetch(url: string, user: string, password: string) {
  return async (path: string, init: RequestInit = {}): Promise<Response> => {
    const send = (auth: string) =>
      fetch(new URL(path, url), {
        redirect: 'manual',
        ...init,
        headers: { ...(init.headers as Record<string, string>), authorization: auth },
      });
    // Basic is refused with a bare challenge, then a token without the scope with one naming it.
    let res = await send(basic(user, password));
    for (let i = 0; i < 2; i++) {
      const challenge = res.headers.get('www-authenticate') ?? '';
      if (res.status !== 401 || !challenge.startsWith('Bearer ')) return res;
      const p = new Map([...challenge.matchAll(/(\w+)="([^"]*)"/g)].map((m) => [m[1]!, m[2]!]));
      const q = new URLSearchParams({ service: p.get('service') ?? 'berth' });
      if (p.has('scope')) q.set('scope', p.get('scope')!);
      const t = await fetch(`${url}/auth/token?${q.toString()}`, {
        headers: { authorization: basic(user, password) },
      });
      expect(t.status).toBe(200);
      res = await send(`Bearer ${((await t.json()) as { token: string }).token}`);
    }
    return res;
  };
}

beforeAll(async () => {
  buildUi();
  const auth = authConfig('token', 4)
    .user('alice', 'alice-pw')
    .user('bob', 'bob-pw')
    .rule({ users: ['alice'], repositories: ['team/**'], actions: ['pull', 'push', 'delete'] })
    .rule({ users: ['bob'], repositories: ['team/**'], actions: ['pull'] })
    .rule({ users: ['alice'], repositories: ['library/**'], actions: ['pull', 'push'] })
    .anonymous('library/**')
    .build();
  berth = await startBerth(auth);
  const alice = new Client(tokenFetch(berth.url, 'alice', 'alice-pw'));
  for (const [repo, tag] of [
    ['team/app', 'v1'],
    ['team/app', 'v2'],
    ['library/base', '1'],
  ] as const) {
    expect((await alice.push(repo, tag, image().layer(300).build())).status, `${repo}:${tag}`).toBe(
      201,
    );
  }
  browser = await launchChromium();
}, 120_000);

afterAll(async () => {
  await browser?.close();
  await berth?.kill();
});

async function open(): Promise<Page> {
  const ctx = await browser.newContext();
  const page = await ctx.newPage();
  page.on('request', (req) => {
    if (!req.url().startsWith(berth.url)) throw new Error(`external request: ${req.url()}`);
  });
  page.on('pageerror', (err) => errors.push(err.message));
  return page;
}

async function signIn(page: Page, user: string, password: string): Promise<void> {
  await page.goto(`${berth.url}/ui/#/signin`);
  await page.getByLabel('User name').fill(user);
  await page.getByLabel('Password').fill(password);
  await page.getByRole('button', { name: 'Sign in' }).click();
}

const repoNames = async (page: Page) => {
  const list = page.getByRole('list', { name: 'Repositories' });
  await list.waitFor();
  return list.getByRole('link').allTextContents();
};

describe("web UI with Berth's token issuer", () => {
  it('GIVEN an anonymous visitor WHEN the UI opens THEN only the anonymously pullable repository is listed', async () => {
    const page = await open();
    await page.goto(`${berth.url}/ui/`);
    expect(await repoNames(page)).toEqual(['library/base']);
  });

  it('GIVEN a wrong password WHEN signing in THEN the issuer refuses it and nobody is signed in', async () => {
    const page = await open();
    await signIn(page, 'bob', 'nope');
    await page.getByRole('alert').getByText('The user name or password is wrong.').waitFor();
    expect(await page.getByText('Signed in as').count()).toBe(0);
  });

  it('GIVEN bob who may only pull WHEN he signs in THEN he sees team/app with delete disabled', async () => {
    const page = await open();
    await signIn(page, 'bob', 'bob-pw');
    await page.getByText('Signed in as bob').waitFor();
    await expect.poll(() => repoNames(page)).toEqual(['library/base', 'team/app']);
    await page.goto(`${berth.url}/ui/#/r/team%2Fapp`);
    const del = page.getByRole('button', { name: 'Delete tag v1' });
    await del.waitFor();
    await expect.poll(() => del.isDisabled()).toBe(true);
  });

  it('GIVEN alice who may delete WHEN she deletes a tag and confirms THEN the API no longer lists it', async () => {
    const page = await open();
    await signIn(page, 'alice', 'alice-pw');
    await page.getByText('Signed in as alice').waitFor();
    await page.goto(`${berth.url}/ui/#/r/team%2Fapp`);
    await page.getByRole('button', { name: 'Delete tag v1' }).click();
    await page
      .getByRole('dialog', { name: 'Delete tag v1' })
      .getByRole('button', { name: 'Delete' })
      .click();
    await expect.poll(() => page.getByRole('row', { name: /^v1 / }).count()).toBe(0);
    const res = await tokenFetch(berth.url, 'bob', 'bob-pw')('/v2/team/app/tags/list');
    expect(res.status).toBe(200);
    expect(((await res.json()) as { tags: string[] }).tags).toEqual(['v2']);
  });

  it('GIVEN the pages above WHEN reviewed THEN no script error happened', () => {
    expect(errors).toEqual([]);
  });
});
