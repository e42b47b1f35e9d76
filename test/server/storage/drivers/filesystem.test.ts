import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FilesystemDriver } from '../../../../server/storage/drivers/filesystem.js';
import { describeStorageDriver } from '../driver-contract.js';

describeStorageDriver('filesystem', {
  make: async () => new FilesystemDriver(mkdtempSync(join(tmpdir(), 'berth-fs-'))),
  bigBytes: 64 * 1024 * 1024 + 5,
});
