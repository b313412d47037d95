// `static`: first-touch placement (the engine fills DRAM in first-touch order) and no migration.
import { emptyMigrations, type Migrations, type Policy } from '../policy.js';

export class StaticPolicy implements Policy {
  readonly name = 'static';
  onEpoch(): Migrations {
    return emptyMigrations();
  }
  overhead() {
    return { trackingNs: 0, events: 0 };
  }
}
