import { FilesystemDriver } from '../../../../server/storage/drivers/filesystem.js';
import { describeStorageDriver } from '../driver-contract.js';
import { scratchDir } from '../../../support/scratch.js';

describeStorageDriver('filesystem', {
  make: async () => new FilesystemDriver(scratchDir('berth-fs-')),
  bigBytes: 64 * 1024 * 1024 + 5,
});
