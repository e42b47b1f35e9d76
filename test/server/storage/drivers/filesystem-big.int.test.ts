import { FilesystemDriver } from '../../../../server/storage/drivers/filesystem.js';
import { describeStorageDriver } from '../driver-contract.js';
import { scratchDir } from '../../../support/scratch.js';

// The multi-GiB class of the contract on the filesystem driver (integration tier: slow).
describeStorageDriver('filesystem (2 GiB stream)', {
  make: async () => new FilesystemDriver(scratchDir('berth-fsbig-')),
  bigBytes: 2 * 1024 * 1024 * 1024 + 9,
});
