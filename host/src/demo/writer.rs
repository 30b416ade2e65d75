//! One writer of the demo load: picks the next business transaction from its own state (the rows
//! it created; it never touches another writer's rows, so its choices depend only on its seed),
//! runs it in one PostgreSQL transaction and updates its state once committed.

use std::collections::BTreeMap;
use std::sync::Arc;

use anyhow::{bail, Context};
use rand::rngs::StdRng;
use rand::SeedableRng;
use sqlx::PgPool;

use super::app::{self, Line, NewOrder};
use super::data::{self, Customer, Product};

/// A kind of business transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    NewCustomer,
    EditCustomer,
    DeleteCustomer,
    NewProduct,
    EditProduct,
    DeleteProduct,
    NewOrder,
    EditOrder,
    EditItem,
    DeleteItem,
    DeleteOrder,
}

/// The mix: orders dominate; customers and products fan out to every unit.
const MIX: &[(Kind, u64, &str)] = &[
    (Kind::NewCustomer, 8, "new_customer"),
    (Kind::EditCustomer, 10, "edit_customer"),
    (Kind::DeleteCustomer, 2, "delete_customer"),
    (Kind::NewProduct, 4, "new_product"),
    (Kind::EditProduct, 8, "edit_product"),
    (Kind::DeleteProduct, 1, "delete_product"),
    (Kind::NewOrder, 35, "new_order"),
    (Kind::EditOrder, 12, "edit_order"),
    (Kind::EditItem, 8, "edit_item"),
    (Kind::DeleteItem, 4, "delete_item"),
    (Kind::DeleteOrder, 8, "delete_order"),
];

fn kind_name(kind: Kind) -> &'static str {
    MIX.iter()
        .find(|(k, _, _)| *k == kind)
        .map_or("?", |(_, _, n)| n)
}

struct Owned<T> {
    id: i64,
    row: T,
    /// Rows of this writer that reference it (orders of a customer, lines of a product).
    refs: u32,
}

struct Order {
    id: i64,
    unit: i32,
    customer_id: i64,
    lines: Vec<Line>,
}

/// A state change applied once the transaction committed.
type Staged = Box<dyn FnOnce(&mut Writer) + Send>;

/// One writer task's state.
pub struct Writer {
    index: usize,
    rng: StdRng,
    units: Arc<Vec<i32>>,
    customers: Vec<Owned<Customer>>,
    products: Vec<Owned<Product>>,
    orders: Vec<Order>,
    products_made: u64,
    /// Whether the writer inserts the outbox rows itself (false: triggers do, or nobody).
    writes_outbox: bool,
    /// Committed transactions per kind.
    pub kinds: BTreeMap<&'static str, u64>,
}

impl Writer {
    /// Writer `index` of a load seeded with `seed`.
    pub fn new(index: usize, seed: u64, units: Arc<Vec<i32>>, writes_outbox: bool) -> Writer {
        let mixed = seed ^ (index as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        Writer {
            index,
            rng: StdRng::seed_from_u64(mixed),
            units,
            customers: Vec::new(),
            products: Vec::new(),
            orders: Vec::new(),
            products_made: 0,
            writes_outbox,
            kinds: BTreeMap::new(),
        }
    }

    /// The outbox rows of one statement, unless the application leaves them to triggers.
    async fn outbox(
        &self,
        tx: &mut app::Tx<'_>,
        units: &[i32],
        table: &str,
        op: &str,
        payloads: &[String],
    ) -> sqlx::Result<u64> {
        if !self.writes_outbox {
            return Ok(0);
        }
        app::outbox(tx, units, table, op, payloads).await
    }

    fn choose(&mut self) -> Kind {
        if self.customers.len() < 3 {
            return Kind::NewCustomer;
        }
        if self.products.len() < 3 {
            return Kind::NewProduct;
        }
        let total: u64 = MIX.iter().map(|(_, w, _)| w).sum();
        let mut roll = data::below(&mut self.rng, total);
        let mut kind = Kind::NewOrder;
        for (k, w, _) in MIX {
            if roll < *w {
                kind = *k;
                break;
            }
            roll -= w;
        }
        let possible = match kind {
            Kind::DeleteCustomer => {
                self.customers.len() > 3 && self.customers.iter().any(|c| c.refs == 0)
            }
            Kind::DeleteProduct => {
                self.products.len() > 3 && self.products.iter().any(|p| p.refs == 0)
            }
            Kind::EditOrder | Kind::DeleteOrder => !self.orders.is_empty(),
            Kind::EditItem => self.orders.iter().any(|o| !o.lines.is_empty()),
            Kind::DeleteItem => self.orders.iter().any(|o| o.lines.len() > 1),
            _ => true,
        };
        if possible {
            kind
        } else {
            Kind::NewOrder
        }
    }

    fn pick_where<T>(&mut self, items: &[T], ok: impl Fn(&T) -> bool) -> Option<usize> {
        let candidates: Vec<usize> = (0..items.len()).filter(|&i| ok(&items[i])).collect();
        if candidates.is_empty() {
            return None;
        }
        Some(candidates[data::index(&mut self.rng, candidates.len())])
    }

    /// Runs one business transaction; returns the outbox rows it wrote.
    pub async fn step(&mut self, pool: &PgPool) -> anyhow::Result<u64> {
        let kind = self.choose();
        let all = Arc::clone(&self.units);
        let mut tx = pool.begin().await.context("BEGIN")?;
        let mut rows = 0;
        // State changes are staged and applied only after COMMIT succeeded.
        let mut commit_state: Option<Staged> = None;
        match kind {
            Kind::NewCustomer => {
                let c = data::customer(&mut self.rng);
                let id = app::next_id(&mut tx).await?;
                let image = app::write_customer(&mut tx, id, &c, true).await?;
                rows += self
                    .outbox(&mut tx, &all, "customers", "I", &[image])
                    .await?;
                commit_state = Some(Box::new(move |w| {
                    w.customers.push(Owned {
                        id,
                        row: c,
                        refs: 0,
                    })
                }));
            }
            Kind::EditCustomer => {
                let i = data::index(&mut self.rng, self.customers.len());
                let (id, c) = (
                    self.customers[i].id,
                    data::edit_customer(&mut self.rng, &self.customers[i].row),
                );
                let image = app::write_customer(&mut tx, id, &c, false).await?;
                rows += self
                    .outbox(&mut tx, &all, "customers", "U", &[image])
                    .await?;
                commit_state = Some(Box::new(move |w| w.customers[i].row = c));
            }
            Kind::DeleteCustomer | Kind::DeleteProduct => {
                let (table, i) = if kind == Kind::DeleteCustomer {
                    let customers = std::mem::take(&mut self.customers);
                    let i = self.pick_where(&customers, |c| c.refs == 0);
                    self.customers = customers;
                    ("customers", i.map(|i| (i, self.customers[i].id)))
                } else {
                    let products = std::mem::take(&mut self.products);
                    let i = self.pick_where(&products, |p| p.refs == 0);
                    self.products = products;
                    ("products", i.map(|i| (i, self.products[i].id)))
                };
                let Some((i, id)) = i else {
                    bail!("no unreferenced row to delete")
                };
                let image = app::delete_by_id(&mut tx, table, id).await?;
                rows += self.outbox(&mut tx, &all, table, "D", &[image]).await?;
                commit_state = Some(Box::new(move |w| {
                    if table == "customers" {
                        w.customers.swap_remove(i);
                    } else {
                        w.products.swap_remove(i);
                    }
                }));
            }
            Kind::NewProduct | Kind::EditProduct => {
                let insert = kind == Kind::NewProduct;
                let (id, i, p) = if insert {
                    self.products_made += 1;
                    let p = data::product(&mut self.rng, self.index, self.products_made);
                    (app::next_id(&mut tx).await?, usize::MAX, p)
                } else {
                    let i = data::index(&mut self.rng, self.products.len());
                    (
                        self.products[i].id,
                        i,
                        data::edit_product(&mut self.rng, &self.products[i].row),
                    )
                };
                let image = app::write_product(&mut tx, id, &p, insert).await?;
                rows += self
                    .outbox(
                        &mut tx,
                        &all,
                        "products",
                        if insert { "I" } else { "U" },
                        &[image],
                    )
                    .await?;
                commit_state = Some(Box::new(move |w| {
                    if insert {
                        w.products.push(Owned {
                            id,
                            row: p,
                            refs: 0,
                        });
                    } else {
                        w.products[i].row = p;
                    }
                }));
            }
            Kind::NewOrder => {
                let unit = all[data::index(&mut self.rng, all.len())];
                let ci = data::index(&mut self.rng, self.customers.len());
                let n = 1 + data::index(&mut self.rng, 5);
                let mut lines = Vec::with_capacity(n);
                for line_no in 1..=n as i32 {
                    let pi = data::index(&mut self.rng, self.products.len());
                    lines.push(Line {
                        line_no,
                        product_id: self.products[pi].id,
                        quantity_milli: data::quantity_milli(&mut self.rng),
                        price_cents: self.products[pi].row.price_cents,
                    });
                }
                let id = app::next_id(&mut tx).await?;
                let customer_id = self.customers[ci].id;
                let order = NewOrder {
                    id,
                    unit,
                    customer_id,
                    ordered_at: data::timestamp(&mut self.rng),
                    status: data::status(&mut self.rng),
                    total_cents: lines
                        .iter()
                        .map(|l| data::line_cents(l.quantity_milli, l.price_cents))
                        .sum(),
                    notes: data::notes(&mut self.rng),
                };
                let image = app::insert_order(&mut tx, &order).await?;
                let items = app::insert_lines(&mut tx, id, &lines).await?;
                rows += self
                    .outbox(&mut tx, &[unit], "orders", "I", &[image])
                    .await?;
                rows += self
                    .outbox(&mut tx, &[unit], "order_items", "I", &items)
                    .await?;
                commit_state = Some(Box::new(move |w| {
                    w.customers[ci].refs += 1;
                    for l in &lines {
                        if let Some(p) = w.products.iter_mut().find(|p| p.id == l.product_id) {
                            p.refs += 1;
                        }
                    }
                    w.orders.push(Order {
                        id,
                        unit,
                        customer_id,
                        lines,
                    });
                }));
            }
            Kind::EditOrder => {
                let oi = data::index(&mut self.rng, self.orders.len());
                let (id, unit) = (self.orders[oi].id, self.orders[oi].unit);
                let (status, notes) = (data::status(&mut self.rng), data::notes(&mut self.rng));
                let image = app::update_order(&mut tx, id, status, &notes).await?;
                rows += self
                    .outbox(&mut tx, &[unit], "orders", "U", &[image])
                    .await?;
            }
            Kind::EditItem | Kind::DeleteItem => {
                let min = if kind == Kind::EditItem { 1 } else { 2 };
                let orders = std::mem::take(&mut self.orders);
                let oi = self.pick_where(&orders, |o| o.lines.len() >= min);
                self.orders = orders;
                let Some(oi) = oi else {
                    bail!("no order with {min} lines")
                };
                let li = data::index(&mut self.rng, self.orders[oi].lines.len());
                let (id, unit) = (self.orders[oi].id, self.orders[oi].unit);
                let mut line = self.orders[oi].lines[li].clone();
                let (item, op) = if kind == Kind::EditItem {
                    line.quantity_milli = data::quantity_milli(&mut self.rng);
                    (app::update_line(&mut tx, id, &line).await?, "U")
                } else {
                    let mut gone = app::delete_lines(&mut tx, id, Some(line.line_no)).await?;
                    (gone.pop().context("the line to delete was not found")?, "D")
                };
                let order = app::retotal_order(&mut tx, id).await?;
                rows += self
                    .outbox(&mut tx, &[unit], "order_items", op, &[item])
                    .await?;
                rows += self
                    .outbox(&mut tx, &[unit], "orders", "U", &[order])
                    .await?;
                commit_state = Some(Box::new(move |w| {
                    if op == "U" {
                        w.orders[oi].lines[li] = line;
                    } else {
                        let product_id = w.orders[oi].lines.remove(li).product_id;
                        if let Some(p) = w.products.iter_mut().find(|p| p.id == product_id) {
                            p.refs = p.refs.saturating_sub(1);
                        }
                    }
                }));
            }
            Kind::DeleteOrder => {
                let oi = data::index(&mut self.rng, self.orders.len());
                let (id, unit) = (self.orders[oi].id, self.orders[oi].unit);
                let items = app::delete_lines(&mut tx, id, None).await?;
                let order = app::delete_by_id(&mut tx, "orders", id).await?;
                rows += self
                    .outbox(&mut tx, &[unit], "order_items", "D", &items)
                    .await?;
                rows += self
                    .outbox(&mut tx, &[unit], "orders", "D", &[order])
                    .await?;
                commit_state = Some(Box::new(move |w| {
                    let o = w.orders.swap_remove(oi);
                    if let Some(c) = w.customers.iter_mut().find(|c| c.id == o.customer_id) {
                        c.refs = c.refs.saturating_sub(1);
                    }
                    for l in &o.lines {
                        if let Some(p) = w.products.iter_mut().find(|p| p.id == l.product_id) {
                            p.refs = p.refs.saturating_sub(1);
                        }
                    }
                }));
            }
        }
        tx.commit().await.context("COMMIT")?;
        if let Some(apply) = commit_state {
            apply(self);
        }
        *self.kinds.entry(kind_name(kind)).or_default() += 1;
        Ok(rows)
    }
}
