import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { authConfig, basic } from '../support/auth.js';
import { image, index, type Built } from '../support/image.js';
import type { BerthProcess } from '../support/process.js';
import { buildUi, clientAs, launchChromium, SCREENSHOTS, startBerth } from './support.js';

const AXE = readFileSync(createRequire(import.meta.url).resolve('axe-core/axe.min.js'), 'utf8');

let berth: BerthProcess;
let browser: Browser;
const contexts: BrowserContext[] = [];
let web: { v1: Built; v2: Built; signature: Built; sbom: Built };
let multi: Built;

function webImage(version: string): Built {
  return image()
    .layer(2048)
    .layer(4096)
    .configure({
      created: '2026-11-30T10:00:00Z',
      config: {
        Env: ['PATH=/usr/bin', `WEB_VERSION=${version}`],
        Entrypoint: ['/usr/bin/web'],
        Cmd: ['--port', '8080'],
        Labels: { 'org.opencontainers.image.source': 'https://git.example/web' },
      },
      history: [
        { created: '2026-11-30T10:00:00Z', created_by: 'COPY web /usr/bin/web' },
        { created: '2026-11-30T10:00:01Z', created_by: 'ENV WEB_VERSION', empty_layer: true },
      ],
    })
    .annotate({
      'org.opencontainers.image.title': 'Storefront web server',
      'org.opencontainers.image.description': `the storefront, release ${version}`,
    })
    .build();
}

beforeAll(async () => {
  buildUi();
  const auth = authConfig('htpasswd', 4)
    .user('alice', 'alice-pw')
    .user('bob', 'bob-pw')
    .rule({
      users: ['alice'],
      repositories: ['team/**', 'library/**'],
      actions: ['pull', 'push', 'delete'],
    })
    .rule({ users: ['bob'], repositories: ['team/**', 'library/**'], actions: ['pull'] })
    .anonymous('library/**')
    .build();
  auth.admins.users.push('alice');
  berth = await startBerth(auth);
  const alice = clientAs(berth.url, 'alice', 'alice-pw');
  const v1 = webImage('1');
  const v2 = webImage('2');
  const signature = image()
    .layer(64)
    .artifact('application/vnd.example.signature.v1+json')
    .subject(v1)
    .build();
  const sbom = image().layer(128).artifact('application/spdx+json').subject(v1).build();
  web = { v1, v2, signature, sbom };
  multi = index([
    image().arch('amd64').layer(1000).build(),
    image().arch('arm64').layer(1100).build(),
  ]);
  const pushes: [string, string, Built][] = [
    ['team/web', 'v1', v1],
    ['team/web', 'v2', v2],
    ['team/web', 'latest', v2],
    ['team/web', signature.digest, signature],
    ['team/web', sbom.digest, sbom],
    ['team/multi', '1.0', multi],
    ['library/alpine', '3.20', image().layer(512).build()],
  ];
  for (const [repo, ref, m] of pushes) {
    const r = await alice.push(repo, ref, m);
    expect(r.status, `${repo}:${ref}`).toBe(201);
  }
  browser = await launchChromium();
}, 120_000);

afterAll(async () => {
  for (const c of contexts) await c.close();
  await browser?.close();
  await berth?.kill();
});

/** newPage opens a fresh browser context (its own session) that must only talk to Berth. */
async function newPage(opts: Parameters<Browser['newContext']>[0] = {}): Promise<Page> {
  const ctx = await browser.newContext({ viewport: { width: 1280, height: 800 }, ...opts });
  contexts.push(ctx);
  const page = await ctx.newPage();
  page.on('request', (req) => {
    const u = req.url();
    if (!u.startsWith(berth.url) && !u.startsWith('data:'))
      throw new Error(`external request: ${u}`);
    outside.push(u);
  });
  page.on('pageerror', (err) => errors.push(err.message));
  return page;
}
const outside: string[] = [];
const errors: string[] = [];

async function signIn(page: Page, user: string, password: string): Promise<void> {
  await page.goto(`${berth.url}/ui/#/signin`);
  await page.getByLabel('User name').fill(user);
  await page.getByLabel('Password').fill(password);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.getByText(`Signed in as ${user}`).waitFor();
}

/** inPage evaluates an expression in the page (a string: this project's types have no DOM). */
const inPage = <T = unknown>(page: Page, expression: string): Promise<T> =>
  page.evaluate<T>(expression);

const shot = (page: Page, name: string) =>
  page.screenshot({ path: join(SCREENSHOTS, `${name}.png`), fullPage: true });

describe('web UI in headless Chromium against a real berth server', () => {
  let alice: Page;

  it('GIVEN an anonymous visitor WHEN the UI opens THEN only the anonymously pullable repositories are listed', async () => {
    const page = await newPage();
    await page.goto(`${berth.url}/`);
    await page.getByRole('list', { name: 'Repositories' }).waitFor();
    const names = await page
      .getByRole('list', { name: 'Repositories' })
      .getByRole('link')
      .allTextContents();
    expect(names).toEqual(['library/alpine']);
    expect(page.url()).toBe(`${berth.url}/ui/`);
  });

  it('GIVEN alice signs in WHEN the repository list shows THEN every repository she may pull is listed', async () => {
    alice = await newPage();
    await signIn(alice, 'alice', 'alice-pw');
    const list = alice.getByRole('list', { name: 'Repositories' });
    await list.getByRole('link', { name: 'team/web' }).waitFor();
    expect(await list.getByRole('link').allTextContents()).toEqual([
      'library/alpine',
      'team/multi',
      'team/web',
    ]);
    await alice.getByText('(admin)').waitFor();
    await shot(alice, 'repositories');
  });

  it('GIVEN a wrong password WHEN signing in THEN the form says so and nobody is signed in', async () => {
    const page = await newPage();
    await page.goto(`${berth.url}/ui/#/signin`);
    await page.getByLabel('User name').fill('alice');
    await page.getByLabel('Password').fill('wrong');
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.getByRole('alert').getByText('The user name or password is wrong.').waitFor();
    expect(await page.getByText('Signed in as').count()).toBe(0);
  });

  it('GIVEN an annotation term WHEN searching THEN the repository whose annotation matches is found, with its tags', async () => {
    await alice.getByLabel('Search repositories, tags and annotations').fill('storefront');
    await alice.keyboard.press('Enter');
    const results = alice.getByRole('list', { name: 'Search results' });
    await results.getByRole('link', { name: 'team/web' }).waitFor();
    expect(await results.getByText('Storefront web server').count()).toBe(1);
    expect(await results.getByRole('link', { name: 'team/multi' }).count()).toBe(0);
    expect(alice.url()).toContain('#/search?q=storefront');
    await shot(alice, 'search');
  });

  it('GIVEN a repository WHEN its tag list opens THEN each tag shows its digest, type, platform, size and created time', async () => {
    await alice.goto(`${berth.url}/ui/#/r/team%2Fweb`);
    const row = alice.getByRole('row', { name: /^v1 / });
    await row.getByText(web.v1.digest.slice(7, 19)).waitFor();
    await row.getByText('linux/amd64').waitFor();
    await row.getByText('2026-11-30 10:00:00 UTC').waitFor();
    expect(await alice.getByTestId('tag-count').textContent()).toBe('3 of 3 tags');
    await alice
      .getByRole('row', { name: /^latest / })
      .getByText(web.v2.digest.slice(7, 19))
      .waitFor();
    await shot(alice, 'tags');
  });

  it('GIVEN an index WHEN it opens THEN its platforms are listed, and one opens with its layers, config and pull commands', async () => {
    await alice.goto(`${berth.url}/ui/#/r/team%2Fmulti/m/1.0`);
    await alice.getByRole('heading', { name: 'Index team/multi:1.0' }).waitFor();
    const platforms = alice.getByRole('region', { name: 'Platforms' });
    await expect
      .poll(() => platforms.getByRole('link').allTextContents())
      .toEqual(['linux/amd64', 'linux/arm64']);
    const host = new URL(berth.url).host;
    await alice.getByText(`docker pull ${host}/team/multi:1.0`, { exact: true }).waitFor();
    await alice
      .getByText(`podman pull ${host}/team/multi@${multi.digest}`, { exact: true })
      .waitFor();
    await alice.getByText(`crane pull ${host}/team/multi:1.0 multi.tar`, { exact: true }).waitFor();
    await shot(alice, 'index');
    await platforms.getByRole('link', { name: 'linux/arm64' }).click();
    await alice
      .getByRole('heading', { name: `Image team/multi@${multi.children[1]!.digest}` })
      .waitFor();
    const layers = alice.getByRole('region', { name: 'Layers' });
    expect(await layers.getByRole('row').count()).toBe(2); // header + one layer
    await alice.getByRole('region', { name: 'Config' }).getByText('linux/arm64').waitFor();
  });

  it('GIVEN an image WHEN it opens THEN config, raw manifest and referrers by artifact type show, and a referrer opens', async () => {
    await alice.goto(`${berth.url}/ui/#/r/team%2Fweb/m/v1`);
    const config = alice.getByRole('region', { name: 'Config' });
    await config.getByText('WEB_VERSION=1').waitFor();
    await config.getByText('/usr/bin/web', { exact: true }).waitFor();
    await config.getByText('COPY web /usr/bin/web').waitFor();
    await config.getByText('https://git.example/web').waitFor();
    const raw = await alice.getByLabel('Raw manifest', { exact: true }).textContent();
    expect(JSON.parse(raw!)).toEqual(JSON.parse(web.v1.body.toString()));
    const refs = alice.getByRole('region', { name: 'Referrers' });
    await refs.getByText('application/vnd.example.signature.v1+json').waitFor();
    await refs.getByText('application/spdx+json').waitFor();
    await shot(alice, 'image');
    await refs.getByRole('link', { name: web.signature.digest.slice(7, 19) }).click();
    await alice
      .getByRole('heading', { name: `Artifact team/web@${web.signature.digest}` })
      .waitFor();
    await alice.getByText('Attached to', { exact: true }).waitFor();
    await alice.getByRole('link', { name: web.v1.digest.slice(7, 19) }).waitFor();
    await shot(alice, 'referrer');
  });

  it('GIVEN bob who may only pull WHEN he opens the tags THEN delete is disabled, and a forced delete is refused with 403', async () => {
    const bob = await newPage();
    await signIn(bob, 'bob', 'bob-pw');
    await bob.goto(`${berth.url}/ui/#/r/team%2Fweb`);
    const del = bob.getByRole('button', { name: 'Delete tag v2' });
    await del.waitFor();
    await expect.poll(() => del.isDisabled()).toBe(true);
    const status = await bob.evaluate(
      async ([auth]) =>
        (
          await fetch('/v2/team/web/manifests/v2', {
            method: 'DELETE',
            headers: { Authorization: auth! },
          })
        ).status,
      [basic('bob', 'bob-pw')],
    );
    expect(status).toBe(403);
    const still = await fetch(`${berth.url}/v2/team/web/tags/list`, {
      headers: { authorization: basic('bob', 'bob-pw') },
    });
    expect(((await still.json()) as { tags: string[] }).tags).toContain('v2');
  });

  it('GIVEN alice who may delete WHEN she deletes a tag and confirms THEN it is gone from the list and from the API', async () => {
    await alice.goto(`${berth.url}/ui/#/r/team%2Fweb`);
    await alice.getByRole('button', { name: 'Delete tag v2' }).click();
    const dialog = alice.getByRole('dialog', { name: 'Delete tag v2' });
    await dialog.getByText('Delete the tag team/web:v2?').waitFor();
    await dialog.getByRole('button', { name: 'Cancel' }).click();
    expect(await alice.getByRole('row', { name: /^v2 / }).count()).toBe(1);
    await alice.getByRole('button', { name: 'Delete tag v2' }).click();
    await shot(alice, 'delete-confirm');
    await dialog.getByRole('button', { name: 'Delete' }).click();
    await expect.poll(() => alice.getByRole('row', { name: /^v2 / }).count()).toBe(0);
    expect(await alice.getByTestId('tag-count').textContent()).toBe('2 of 2 tags');
    const tags = await fetch(`${berth.url}/v2/team/web/tags/list`, {
      headers: { authorization: basic('alice', 'alice-pw') },
    });
    expect(((await tags.json()) as { tags: string[] }).tags).toEqual(['latest', 'v1']);
  });

  it('GIVEN the activity page is open WHEN an image is pushed THEN its event appears live', async () => {
    await alice.goto(`${berth.url}/ui/#/activity`);
    await alice.getByText('Live: new pushes').waitFor();
    // The stream starts at the end of the outbox: wait until it is connected before pushing.
    await alice.waitForTimeout(500);
    const r = await clientAs(berth.url, 'alice', 'alice-pw').push(
      'team/live',
      'fresh',
      image().layer(256).build(),
    );
    expect(r.status).toBe(201);
    const events = alice.getByRole('list', { name: 'Events, newest first' });
    await events.getByRole('link', { name: 'team/live:fresh' }).waitFor({ timeout: 15_000 });
    await shot(alice, 'activity');
  });

  it('GIVEN a phone-sized screen in dark mode WHEN an image opens THEN nothing overflows sideways and the colours are dark', async () => {
    const phone = await newPage({
      viewport: { width: 390, height: 844 },
      colorScheme: 'dark',
      isMobile: true,
      hasTouch: true,
    });
    await signIn(phone, 'alice', 'alice-pw');
    await phone.goto(`${berth.url}/ui/#/r/team%2Fweb/m/v1`);
    await phone.getByRole('region', { name: 'Config' }).getByText('WEB_VERSION=1').waitFor();
    const { scroll, client, bg } = await inPage<{ scroll: number; client: number; bg: string }>(
      phone,
      `({ scroll: document.documentElement.scrollWidth, client: document.documentElement.clientWidth,
          bg: getComputedStyle(document.body).backgroundColor })`,
    );
    expect(scroll).toBeLessThanOrEqual(client);
    expect(bg).toBe('rgb(13, 17, 23)');
    await shot(phone, 'image-phone-dark');
  });

  it('GIVEN only a keyboard WHEN tabbing from the top THEN the skip link comes first and moves focus to the content', async () => {
    const page = await newPage();
    await page.goto(`${berth.url}/ui/`);
    await page.getByRole('list', { name: 'Repositories' }).waitFor();
    await page.keyboard.press('Tab');
    expect(await inPage(page, 'document.activeElement?.textContent')).toBe('Skip to content');
    await page.keyboard.press('Enter');
    expect(await inPage(page, 'document.activeElement?.id')).toBe('main');
    await page.keyboard.press('Tab');
    expect(await inPage(page, 'document.activeElement?.textContent')).toBe('library/alpine');
  });

  it('GIVEN the main pages WHEN axe checks them THEN there is no serious or critical violation', async () => {
    const page = await newPage();
    await signIn(page, 'alice', 'alice-pw');
    const pages: [string, string][] = [
      ['repositories', '/ui/#/'],
      ['search', '/ui/#/search?q=web'],
      ['tags', '/ui/#/r/team%2Fweb'],
      ['image', '/ui/#/r/team%2Fweb/m/v1'],
      ['index', '/ui/#/r/team%2Fmulti/m/1.0'],
      ['activity', '/ui/#/activity'],
      ['signin', '/ui/#/signin'],
    ];
    for (const [name, path] of pages) {
      for (const scheme of ['light', 'dark'] as const) {
        await page.emulateMedia({ colorScheme: scheme });
        await page.goto(`${berth.url}${path}`);
        await page.waitForLoadState('networkidle').catch(() => undefined);
        await expect
          .poll(() => inPage(page, "document.querySelector('.loading') === null"))
          .toBe(true);
        // axe runs through the DevTools protocol, so the page's content security policy stays on.
        await page.evaluate(AXE);
        const violations = await inPage<string[]>(
          page,
          `axe.run({ runOnly: ['wcag2a', 'wcag2aa', 'best-practice'] }).then((r) => r.violations
            .filter((v) => v.impact === 'serious' || v.impact === 'critical')
            .map((v) => v.id + ': ' + JSON.stringify(v.nodes.map((n) => n.target))))`,
        );
        expect(violations, `${name} (${scheme})`).toEqual([]);
      }
    }
  });

  it('GIVEN every page above WHEN their requests are reviewed THEN none left Berth and no script error happened', () => {
    expect(outside.length).toBeGreaterThan(0);
    expect(outside.every((u) => u.startsWith(berth.url))).toBe(true);
    expect(errors).toEqual([]);
  });
});
