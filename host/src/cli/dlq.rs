//! `ponte dlq list|show|replay|requeue-outbox`: prints what the dead-letter operations found or did.

use super::DlqCommand;
use crate::config::Config;

/// Runs one `dlq` subcommand.
pub(super) async fn dlq(cmd: DlqCommand, config: &Config) -> anyhow::Result<()> {
    use crate::ops::dlq;
    match cmd {
        DlqCommand::List { limit } => {
            let letters = dlq::list(config, limit).await?;
            println!("{} dead letter(s) shown", letters.len());
            for l in letters {
                println!(
                    "{:>4}  {}  unit {:<4} {:<40} [{}] {}",
                    l.position, l.correlation_id, l.unit, l.routing_key, l.class, l.reason
                );
            }
            Ok(())
        }
        DlqCommand::Show { correlation_id } => {
            let Some(l) = dlq::find(config, &correlation_id).await? else {
                anyhow::bail!("no dead letter with correlation id {correlation_id}");
            };
            println!(
                "correlation id: {}\nrouting key:    {}\nunit:           {}\nclass:          {}\n\
                 reason:         {}\ndead at:        {}\nposition:       {}\nbody:\n{}",
                l.correlation_id,
                l.routing_key,
                l.unit,
                l.class,
                l.reason,
                l.dead_at,
                l.position,
                l.body
            );
            Ok(())
        }
        DlqCommand::Replay {
            correlation_ids,
            all,
        } => {
            let n = dlq::replay(config, &correlation_ids, all).await?;
            println!("{n} dead letter(s) replayed");
            Ok(())
        }
        DlqCommand::RequeueOutbox { id, unit } => {
            let n = dlq::requeue_outbox(config, id, unit).await?;
            println!("{n} outbox row(s) back to pending");
            Ok(())
        }
    }
}
