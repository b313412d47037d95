// `oracle`: knows the next epoch's true hot set (the K pages that will take the most accesses,
// K = DRAM pages) and places exactly it in DRAM before the epoch starts, moving only pages that
// change the outcome. An upper bound on the DRAM-served share of any placement that changes
// once per epoch; it pays for its migrations like the rest.
import { planToSet } from '../plan.js';
import { emptyMigrations, type Migrations, type Policy, type PolicyContext } from '../policy.js';

export class OraclePolicy implements Policy {
  readonly name = 'oracle';

  onEpoch(ctx: PolicyContext): Migrations {
    const future = ctx.futureHotSet;
    if (!future) return emptyMigrations();
    return planToSet(future, ctx.tier, ctx.dramCapacityPages, ctx.dramUsedPages);
  }
  overhead() {
    return { trackingNs: 0, events: 0 };
  }
}
