import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FilesystemDriver } from '../../../../server/storage/drivers/filesystem.js';
import { describeStorageDriver } from '../driver-contract.js';

// The multi-GiB class of the contract on the filesystem driver (integration tier: slow).
describeStorageDriver('filesystem (2 GiB stream)', {
  make: async () => new FilesystemDriver(mkdtempSync(join(tmpdir(), 'berth-fsbig-'))),
  bigBytes: 2 * 1024 * 1024 * 1024 + 9,
});
