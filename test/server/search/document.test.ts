import { describe, expect, it } from 'vitest';
import {
  emptyDocument,
  imageText,
  matchDocument,
  type SearchDocument,
} from '../../../server/search/document.js';

const A = 'sha256:' + 'a'.repeat(64);
const B = 'sha256:' + 'b'.repeat(64);

function doc(over: Partial<SearchDocument> = {}): SearchDocument {
  return {
    ...emptyDocument('team-a/web-app'),
    tags: { latest: A, 'v1.0': A, 'v2.0-rc': B },
    manifests: {
      [A]: { title: 'Web App', description: 'The storefront', source: 'https://git/web' },
      [B]: {},
    },
    ...over,
  };
}

describe('search matcher', () => {
  it('GIVEN a term in the repository name WHEN matched THEN name matched, every tag listed in byte order, and the text of latest shown', () => {
    expect(matchDocument(doc(), 'WEB-app')).toEqual({
      repository: 'team-a/web-app',
      tags: ['latest', 'v1.0', 'v2.0-rc'],
      matched: ['name'],
      title: 'Web App',
      description: 'The storefront',
      source: 'https://git/web',
    });
  });

  it('GIVEN a term in some tags only WHEN matched THEN only those tags are listed', () => {
    const hit = matchDocument(doc(), 'RC');
    expect(hit?.matched).toEqual(['tag']);
    expect(hit?.tags).toEqual(['v2.0-rc']);
  });

  it('GIVEN a term in an annotation only WHEN matched THEN annotation matched and all tags listed', () => {
    const hit = matchDocument(doc(), 'storefront');
    expect(hit?.matched).toEqual(['annotation']);
    expect(hit?.tags).toEqual(['latest', 'v1.0', 'v2.0-rc']);
  });

  it('GIVEN a term found nowhere, or an emptied document WHEN matched THEN nothing', () => {
    expect(matchDocument(doc(), 'database')).toBeUndefined();
    expect(matchDocument(emptyDocument('team-a/web-app'), 'web')).toBeUndefined();
  });

  it('GIVEN manifest annotations WHEN picked THEN only title, description and source are kept, empty ones dropped', () => {
    expect(
      imageText({
        'org.opencontainers.image.title': 'x',
        'org.opencontainers.image.description': '',
        'org.opencontainers.image.source': 'https://s',
        'org.opencontainers.image.version': '1',
      }),
    ).toEqual({ title: 'x', source: 'https://s' });
    expect(imageText(undefined)).toEqual({});
  });
});
