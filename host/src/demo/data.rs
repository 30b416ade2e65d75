//! Deterministic fake business data for the demo load: Portuguese names and cities with accents,
//! NULLs in nullable columns, exact decimals up to NUMERIC(18,2)'s limit, millisecond timestamps.

use chrono::{DateTime, Duration, NaiveDate, TimeZone, Utc};
use rand::rngs::StdRng;
use rand::Rng;
use serde_json::{json, Value};

const FIRST: &[&str] = &[
    "José",
    "João",
    "Maria da Conceição",
    "Antônio",
    "Luíza",
    "Sebastião",
    "Inês",
    "Conceição",
    "Françoise",
    "Márcio",
    "Letícia",
    "Gonçalo",
    "Ângela",
    "Cauã",
    "Zé",
    "Ana Júlia",
];
const LAST: &[&str] = &[
    "Conceição",
    "Gonçalves",
    "Araújo",
    "Magalhães",
    "Simões",
    "Guimarães",
    "Assunção",
    "Brandão",
    "D'Ávila",
    "Nóbrega",
    "Peçanha",
    "Fontes",
    "Müller",
    "Silva",
    "Loureiro",
    "Sá",
];
const CITIES: &[&str] = &[
    "São Paulo",
    "Ribeirão Preto",
    "São José dos Campos",
    "Florianópolis",
    "Belém",
    "Maceió",
    "Goiânia",
    "Cuiabá",
    "Jundiaí",
    "Niterói",
    "Santa Bárbara d'Oeste",
    "Paraty",
];
const PRODUCTS: &[&str] = &[
    "Café torrado e moído",
    "Pão de queijo congelado",
    "Açúcar cristal",
    "Feijão carioca",
    "Guaraná em pó",
    "Farinha de mandioca",
    "Doce de leite",
    "Castanha-do-pará",
    "Pimenta-do-reino",
    "Açaí congelado",
    "Requeijão cremoso",
    "Sabão de coco",
];
const NOTES: &[&str] = &[
    "Entregar após as 14h; portão azul.",
    "Cliente pediu nota fiscal com CNPJ.\nLigar antes: (16) 3333-4444.",
    "Atenção: produto frágil — não empilhar.",
    "Pagamento em 3x sem juros; confirmação por e-mail.",
    "Retirada na loja de Ribeirão Preto",
];
const SEGMENTS: &[&str] = &["varejo", "atacado", "distribuição", "órgão público"];
/// Order status values (VARCHAR(12)).
pub const STATUSES: &[&str] = &["aberto", "separação", "faturado", "entregue", "cancelado"];

/// The largest NUMERIC(18,2) credit limit, written as it must arrive.
pub const MAX_CREDIT: &str = "999999999999999.99";

fn pick<'a>(rng: &mut StdRng, items: &[&'a str]) -> &'a str {
    items[rng.random_range(0..items.len())]
}

/// A customer row (without id).
#[derive(Debug, Clone)]
pub struct Customer {
    pub name: String,
    pub email: Option<String>,
    pub city: Option<String>,
    pub active: bool,
    pub credit_limit: Option<String>,
    pub birth_date: Option<NaiveDate>,
    pub external_ref: Option<uuid::Uuid>,
    pub attributes: Option<Value>,
    pub updated_at: DateTime<Utc>,
}

/// A product row (without id).
#[derive(Debug, Clone)]
pub struct Product {
    pub sku: String,
    pub description: String,
    /// Price in cents.
    pub price_cents: i64,
    pub stock: i32,
    pub discontinued: bool,
}

/// An exact decimal with `scale` digits after the point, from an integer amount in units of
/// 10^-scale.
pub fn decimal(amount: i64, scale: u32) -> String {
    let unit = 10_i64.pow(scale);
    let sign = if amount < 0 { "-" } else { "" };
    let abs = amount.unsigned_abs();
    let unit = unit.unsigned_abs();
    if scale == 0 {
        return format!("{sign}{abs}");
    }
    format!(
        "{sign}{}.{:0width$}",
        abs / unit,
        abs % unit,
        width = scale as usize
    )
}

/// A timestamp between 2024-01-01 and ~2025-06 with millisecond precision.
pub fn timestamp(rng: &mut StdRng) -> DateTime<Utc> {
    let base = Utc
        .with_ymd_and_hms(2024, 1, 1, 0, 0, 0)
        .single()
        .unwrap_or_default();
    base + Duration::milliseconds(rng.random_range(0..45_000_000_000_i64))
}

fn credit_limit(rng: &mut StdRng) -> Option<String> {
    match rng.random_range(0..10) {
        0 | 1 => None,
        2 => Some(MAX_CREDIT.to_string()),
        3 => Some(decimal(rng.random_range(-50_000..0), 2)),
        _ => Some(decimal(rng.random_range(0..10_000_000_000), 2)),
    }
}

fn attributes(rng: &mut StdRng) -> Option<Value> {
    match rng.random_range(0..4) {
        0 => None,
        1 => Some(json!({})),
        _ => Some(json!({
            "segmento": pick(rng, SEGMENTS),
            "pontos": rng.random_range(0..10_000),
            "tags": ["fidelidade", pick(rng, CITIES)],
            "observação": format!("cliente desde {}", rng.random_range(1980..2024)),
            "desconto": decimal(rng.random_range(0..2_500), 2),
        })),
    }
}

/// The ASCII letter of an accented Portuguese one; None for what an e-mail login drops.
fn fold(c: char) -> Option<char> {
    let folded = match c {
        'á' | 'à' | 'â' | 'ã' => 'a',
        'é' | 'ê' => 'e',
        'í' => 'i',
        'ó' | 'ô' | 'õ' => 'o',
        'ú' | 'ü' => 'u',
        'ç' => 'c',
        c => c,
    };
    folded.is_ascii_alphanumeric().then_some(folded)
}

/// A new customer.
pub fn customer(rng: &mut StdRng) -> Customer {
    let first = pick(rng, FIRST);
    let last = pick(rng, LAST);
    let name = format!("{first} {last}");
    let email = rng.random_bool(0.8).then(|| {
        let login: String = name.to_lowercase().chars().filter_map(fold).collect();
        format!("{login}{}@exemplo.com.br", rng.random_range(1..1000))
    });
    Customer {
        name,
        email,
        city: rng.random_bool(0.9).then(|| pick(rng, CITIES).to_string()),
        active: rng.random_bool(0.85),
        credit_limit: credit_limit(rng),
        birth_date: rng.random_bool(0.7).then(|| {
            NaiveDate::from_ymd_opt(1940, 1, 1).unwrap_or_default()
                + Duration::days(rng.random_range(0..24_000))
        }),
        external_ref: rng.random_bool(0.6).then(|| {
            let bytes: [u8; 16] = rng.random();
            uuid::Builder::from_random_bytes(bytes).into_uuid()
        }),
        attributes: attributes(rng),
        updated_at: timestamp(rng),
    }
}

/// The same customer after an edit at a later time.
pub fn edit_customer(rng: &mut StdRng, c: &Customer) -> Customer {
    let mut next = c.clone();
    match rng.random_range(0..5) {
        0 => next.city = rng.random_bool(0.9).then(|| pick(rng, CITIES).to_string()),
        1 => next.credit_limit = credit_limit(rng),
        2 => next.active = !c.active,
        3 => next.attributes = attributes(rng),
        _ => {
            next.email = None;
            next.birth_date = None;
        }
    }
    next.updated_at = c.updated_at + Duration::milliseconds(rng.random_range(1..86_400_000));
    next
}

/// A new product; `n` makes the SKU unique within a writer.
pub fn product(rng: &mut StdRng, writer: usize, n: u64) -> Product {
    Product {
        sku: format!("SKU-{writer:02}-{n:06}"),
        description: format!("{} {}g", pick(rng, PRODUCTS), rng.random_range(1..50) * 100),
        price_cents: rng.random_range(1..5_000_000),
        stock: rng.random_range(0..10_000),
        discontinued: rng.random_bool(0.1),
    }
}

/// The same product after a price or stock change.
pub fn edit_product(rng: &mut StdRng, p: &Product) -> Product {
    let mut next = p.clone();
    match rng.random_range(0..3) {
        0 => next.price_cents = rng.random_range(1..5_000_000),
        1 => next.stock = rng.random_range(0..10_000),
        _ => next.discontinued = !p.discontinued,
    }
    next
}

/// An order's notes: often NULL, sometimes multi-line text.
pub fn notes(rng: &mut StdRng) -> Option<String> {
    rng.random_bool(0.4).then(|| pick(rng, NOTES).to_string())
}

/// A status.
pub fn status(rng: &mut StdRng) -> &'static str {
    pick(rng, STATUSES)
}

/// A quantity in thousandths (NUMERIC(12,3)): whole units half of the time.
pub fn quantity_milli(rng: &mut StdRng) -> i64 {
    if rng.random_bool(0.5) {
        rng.random_range(1..20) * 1000
    } else {
        rng.random_range(1..100_000)
    }
}

/// A line's amount in cents: quantity x unit price rounded half up to cents.
pub fn line_cents(quantity_milli: i64, price_cents: i64) -> i64 {
    let exact = i128::from(quantity_milli) * i128::from(price_cents);
    i64::try_from((exact + 500) / 1000).unwrap_or(i64::MAX)
}

/// An index below `n` (n > 0).
pub fn index(rng: &mut StdRng, n: usize) -> usize {
    rng.random_range(0..n.max(1))
}

/// A number below `n` (n > 0).
pub fn below(rng: &mut StdRng, n: u64) -> u64 {
    rng.random_range(0..n.max(1))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn decimals_are_exact_text() {
        assert_eq!(decimal(99_999_999_999_999_999, 2), MAX_CREDIT);
        assert_eq!(decimal(-5, 2), "-0.05");
        assert_eq!(decimal(2500, 3), "2.500");
        assert_eq!(decimal(7, 0), "7");
        assert_eq!(line_cents(2_500, 199), 498);
    }

    #[test]
    fn same_seed_same_data() {
        let a = customer(&mut StdRng::seed_from_u64(7));
        let b = customer(&mut StdRng::seed_from_u64(7));
        assert_eq!(a.name, b.name);
        assert_eq!(a.updated_at, b.updated_at);
        assert_eq!(a.updated_at.timestamp_subsec_nanos() % 1_000_000, 0);
    }
}
