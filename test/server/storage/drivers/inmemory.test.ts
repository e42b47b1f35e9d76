import { InMemoryDriver } from '../../../../server/storage/drivers/inmemory.js';
import { describeStorageDriver } from '../driver-contract.js';

describeStorageDriver('inmemory', {
  make: async () => new InMemoryDriver(),
  bigBytes: 8 * 1024 * 1024 + 3,
});
