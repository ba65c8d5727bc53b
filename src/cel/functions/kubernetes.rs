//! Kubernetes' CEL libraries, as the API server offers them and KRO enables them: Lists, Regex,
//! URLs, IP, CIDR, Quantity and Semver.

use std::{
    cmp::Ordering,
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
    sync::Arc,
};

use cel::{
    DeclarationError, Env, Value,
    common::types::{DYN_TYPE, INT_TYPE, LIST_TYPE, STRING_TYPE, Type},
    objects::Opaque,
};

use super::{Outcome, int, list, overload, string};

fn ip_type() -> Type {
    Type::new_opaque_type("net.IP")
}

fn cidr_type() -> Type {
    Type::new_opaque_type("net.CIDR")
}

pub(super) fn register(env: &mut Env) -> Result<(), DeclarationError> {
    lists(env)?;
    regex(env)?;
    ip(env)?;
    cidr(env)?;
    quantity(env)?;
    semver(env)?;
    url(env)
}

/// The string form of one of this library's opaque values.
pub(super) fn opaque_to_string(opaque: &dyn Opaque) -> Option<String> {
    if let Some(ip) = opaque.downcast_ref::<Ip>() {
        return Some(ip.0.to_string());
    }
    if let Some(cidr) = opaque.downcast_ref::<Cidr>() {
        return Some(cidr.to_string());
    }
    if let Some(quantity) = opaque.downcast_ref::<Quantity>() {
        return Some(quantity.text.clone());
    }
    if let Some(version) = opaque.downcast_ref::<Semver>() {
        return Some(version.to_string());
    }
    opaque.downcast_ref::<Url>().map(|url| url.text.clone())
}

fn opaque<T: Opaque>(value: T) -> Value {
    Value::Opaque(Arc::new(value))
}

fn arg<'a, T: Opaque>(args: &'a [Value], index: usize, what: &str) -> Result<&'a T, String> {
    match args.get(index) {
        Some(Value::Opaque(o)) => o
            .downcast_ref::<T>()
            .ok_or_else(|| format!("expected {what}")),
        other => Err(format!("expected {what}, got {other:?}")),
    }
}

// ---------------------------------------------------------------------------------------------
// Lists: isSorted, sum, min, max, indexOf, lastIndexOf.

fn lists(env: &mut Env) -> Result<(), DeclarationError> {
    overload!(env, "isSorted", "list_is_sorted", member LIST_TYPE, [], is_sorted)?;
    overload!(env, "sum", "list_sum", member LIST_TYPE, [], sum)?;
    overload!(env, "min", "list_min", member LIST_TYPE, [], |a| extreme(a, Ordering::Less))?;
    overload!(env, "max", "list_max", member LIST_TYPE, [], |a| extreme(a, Ordering::Greater))?;
    overload!(env, "indexOf", "list_index_of", member LIST_TYPE, [DYN_TYPE], |a| index_of(a, false))?;
    overload!(env, "lastIndexOf", "list_last_index_of", member LIST_TYPE, [DYN_TYPE], |a| index_of(a, true))
}

fn compare(a: &Value, b: &Value) -> Result<Ordering, String> {
    a.partial_cmp(b)
        .ok_or_else(|| format!("{a:?} and {b:?} cannot be compared"))
}

fn is_sorted(args: &[Value]) -> Outcome {
    let items = list(args, 0)?;
    for pair in items.windows(2) {
        if compare(&pair[0], &pair[1])? == Ordering::Greater {
            return Ok(Value::Bool(false));
        }
    }
    Ok(Value::Bool(true))
}

fn sum(args: &[Value]) -> Outcome {
    let items = list(args, 0)?;
    let Some(first) = items.first() else {
        return Ok(Value::Int(0));
    };
    let mut total = match first {
        Value::Int(_) => Value::Int(0),
        Value::UInt(_) => Value::UInt(0),
        Value::Float(_) => Value::Float(0.0),
        Value::Duration(_) => Value::Duration(chrono::TimeDelta::zero()),
        other => return Err(format!("sum() takes numbers or durations, not {other:?}")),
    };
    for item in items {
        total = match (&total, item) {
            (Value::Int(a), Value::Int(b)) => {
                Value::Int(a.checked_add(*b).ok_or("integer overflow")?)
            }
            (Value::UInt(a), Value::UInt(b)) => {
                Value::UInt(a.checked_add(*b).ok_or("unsigned integer overflow")?)
            }
            (Value::Float(a), Value::Float(b)) => Value::Float(a + b),
            (Value::Duration(a), Value::Duration(b)) => {
                Value::Duration(a.checked_add(b).ok_or("duration overflow")?)
            }
            (_, other) => return Err(format!("sum() of mixed types: {other:?}")),
        };
    }
    Ok(total)
}

fn extreme(args: &[Value], wanted: Ordering) -> Outcome {
    let items = list(args, 0)?;
    let name = if wanted == Ordering::Less {
        "min"
    } else {
        "max"
    };
    let mut best = items
        .first()
        .ok_or_else(|| format!("{name} called on empty list"))?;
    for item in &items[1..] {
        if compare(item, best)? == wanted {
            best = item;
        }
    }
    Ok(best.clone())
}

fn index_of(args: &[Value], last: bool) -> Outcome {
    let items = list(args, 0)?;
    let wanted = &args[1];
    let position = if last {
        items.iter().rposition(|item| item == wanted)
    } else {
        items.iter().position(|item| item == wanted)
    };
    Ok(Value::Int(
        position.map_or(-1, |p| i64::try_from(p).unwrap_or(i64::MAX)),
    ))
}

// ---------------------------------------------------------------------------------------------
// Regex: find, findAll.

fn regex(env: &mut Env) -> Result<(), DeclarationError> {
    overload!(env, "find", "string_find", member STRING_TYPE, [STRING_TYPE], find)?;
    overload!(env, "findAll", "string_find_all", member STRING_TYPE, [STRING_TYPE], |a| find_all(a, -1))?;
    overload!(env, "findAll", "string_find_all_n", member STRING_TYPE, [STRING_TYPE, INT_TYPE], |a| {
        find_all(a, int(a, 2)?)
    })
}

fn compile_regex(pattern: &str) -> Result<regex::Regex, String> {
    regex::RegexBuilder::new(pattern)
        .size_limit(1 << 20)
        .build()
        .map_err(|e| format!("Illegal regex: {e}"))
}

fn find(args: &[Value]) -> Outcome {
    let re = compile_regex(string(args, 1)?)?;
    let found = re.find(string(args, 0)?).map_or("", |m| m.as_str());
    Ok(Value::String(Arc::new(found.to_owned())))
}

fn find_all(args: &[Value], limit: i64) -> Outcome {
    let re = compile_regex(string(args, 1)?)?;
    let text = string(args, 0)?;
    let limit = usize::try_from(limit).unwrap_or(usize::MAX);
    let found = re
        .find_iter(text)
        .take(limit)
        .map(|m| Value::String(Arc::new(m.as_str().to_owned())))
        .collect();
    Ok(Value::List(Arc::new(found)))
}

// ---------------------------------------------------------------------------------------------
// IP addresses.

/// An IP address, as Kubernetes accepts them: no zones, no IPv4-mapped IPv6.
#[derive(Debug, PartialEq, Eq)]
struct Ip(IpAddr);

impl Opaque for Ip {
    fn runtime_type_name(&self) -> &'static str {
        "net.IP"
    }
}

fn parse_ip(text: &str) -> Result<IpAddr, String> {
    let ip: IpAddr = text
        .parse()
        .map_err(|_| format!("IP address {text:?} is not valid"))?;
    if let IpAddr::V6(v6) = ip
        && v6.to_ipv4_mapped().is_some()
    {
        return Err(format!("IPv4-mapped IPv6 address {text:?} is not allowed"));
    }
    Ok(ip)
}

fn ip(env: &mut Env) -> Result<(), DeclarationError> {
    overload!(env, "ip", "string_to_ip", [STRING_TYPE], |a| Ok(opaque(
        Ip(parse_ip(string(a, 0)?)?)
    )))?;
    overload!(env, "isIP", "is_ip", [STRING_TYPE], |a| Ok(Value::Bool(
        parse_ip(string(a, 0)?).is_ok()
    )))?;
    overload!(
        env,
        "ip.isCanonical",
        "ip_is_canonical",
        [STRING_TYPE],
        |a| {
            let text = string(a, 0)?;
            Ok(Value::Bool(parse_ip(text)?.to_string() == text))
        }
    )?;
    overload!(env, "string", "ip_to_string", [ip_type()], |a| {
        Ok(Value::String(Arc::new(
            arg::<Ip>(a, 0, "an IP")?.0.to_string(),
        )))
    })?;
    overload!(env, "family", "ip_family", member ip_type(), [], |a| {
        Ok(Value::Int(if arg::<Ip>(a, 0, "an IP")?.0.is_ipv4() { 4 } else { 6 }))
    })?;
    overload!(env, "isUnspecified", "ip_is_unspecified", member ip_type(), [], |a| {
        Ok(Value::Bool(arg::<Ip>(a, 0, "an IP")?.0.is_unspecified()))
    })?;
    overload!(env, "isLoopback", "ip_is_loopback", member ip_type(), [], |a| {
        Ok(Value::Bool(arg::<Ip>(a, 0, "an IP")?.0.is_loopback()))
    })?;
    overload!(env, "isLinkLocalMulticast", "ip_is_link_local_multicast", member ip_type(), [], |a| {
        Ok(Value::Bool(match arg::<Ip>(a, 0, "an IP")?.0 {
            IpAddr::V4(v4) => v4.octets()[..3] == [224, 0, 0],
            IpAddr::V6(v6) => v6.segments()[0] & 0xff0f == 0xff02,
        }))
    })?;
    overload!(env, "isLinkLocalUnicast", "ip_is_link_local_unicast", member ip_type(), [], |a| {
        Ok(Value::Bool(is_link_local_unicast(arg::<Ip>(a, 0, "an IP")?.0)))
    })?;
    overload!(env, "isGlobalUnicast", "ip_is_global_unicast", member ip_type(), [], |a| {
        Ok(Value::Bool(is_global_unicast(arg::<Ip>(a, 0, "an IP")?.0)))
    })
}

fn is_link_local_unicast(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.octets()[..2] == [169, 254],
        IpAddr::V6(v6) => v6.segments()[0] & 0xffc0 == 0xfe80,
    }
}

/// Go's `net.IP.IsGlobalUnicast`: private ranges count as global unicast.
fn is_global_unicast(ip: IpAddr) -> bool {
    let broadcast = ip == IpAddr::V4(Ipv4Addr::BROADCAST);
    !(ip.is_unspecified()
        || ip.is_loopback()
        || ip.is_multicast()
        || broadcast
        || is_link_local_unicast(ip))
}

// ---------------------------------------------------------------------------------------------
// CIDRs.

/// A CIDR: an address and a prefix length.
#[derive(Debug, PartialEq, Eq)]
struct Cidr {
    ip: IpAddr,
    prefix: u8,
}

impl Opaque for Cidr {
    fn runtime_type_name(&self) -> &'static str {
        "net.CIDR"
    }
}

impl std::fmt::Display for Cidr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.ip, self.prefix)
    }
}

impl Cidr {
    fn parse(text: &str) -> Result<Self, String> {
        let bad = || format!("network address {text:?} is not a valid CIDR");
        let (ip, prefix) = text.split_once('/').ok_or_else(bad)?;
        let ip = parse_ip(ip).map_err(|_| bad())?;
        if prefix.is_empty()
            || prefix.len() > 3
            || !prefix.bytes().all(|b| b.is_ascii_digit())
            || (prefix.len() > 1 && prefix.starts_with('0'))
        {
            return Err(bad());
        }
        let prefix: u8 = prefix.parse().map_err(|_| bad())?;
        if prefix > max_prefix(ip) {
            return Err(bad());
        }
        Ok(Self { ip, prefix })
    }

    fn masked(&self) -> IpAddr {
        match self.ip {
            IpAddr::V4(v4) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                IpAddr::V4(Ipv4Addr::from(u32::from(v4) & mask))
            }
            IpAddr::V6(v6) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                IpAddr::V6(Ipv6Addr::from(u128::from(v6) & mask))
            }
        }
    }

    fn contains(&self, ip: IpAddr) -> bool {
        ip.is_ipv4() == self.ip.is_ipv4()
            && Cidr {
                ip,
                prefix: self.prefix,
            }
            .masked()
                == self.masked()
    }
}

fn max_prefix(ip: IpAddr) -> u8 {
    if ip.is_ipv4() { 32 } else { 128 }
}

fn ip_argument(args: &[Value], index: usize) -> Result<IpAddr, String> {
    match args.get(index) {
        Some(Value::String(s)) => parse_ip(s),
        _ => Ok(arg::<Ip>(args, index, "an IP")?.0),
    }
}

fn cidr_argument(args: &[Value], index: usize) -> Result<(IpAddr, u8), String> {
    match args.get(index) {
        Some(Value::String(s)) => Cidr::parse(s).map(|c| (c.ip, c.prefix)),
        _ => arg::<Cidr>(args, index, "a CIDR").map(|c| (c.ip, c.prefix)),
    }
}

fn cidr(env: &mut Env) -> Result<(), DeclarationError> {
    let t = cidr_type;
    overload!(env, "cidr", "string_to_cidr", [STRING_TYPE], |a| Ok(
        opaque(Cidr::parse(string(a, 0)?)?)
    ))?;
    overload!(env, "isCIDR", "is_cidr", [STRING_TYPE], |a| Ok(
        Value::Bool(Cidr::parse(string(a, 0)?).is_ok())
    ))?;
    overload!(env, "string", "cidr_to_string", [t()], |a| {
        Ok(Value::String(Arc::new(
            arg::<Cidr>(a, 0, "a CIDR")?.to_string(),
        )))
    })?;
    overload!(env, "containsIP", "cidr_contains_ip_string", member t(), [STRING_TYPE], contains_ip)?;
    overload!(env, "containsIP", "cidr_contains_ip_ip", member t(), [ip_type()], contains_ip)?;
    overload!(env, "containsCIDR", "cidr_contains_cidr_string", member t(), [STRING_TYPE], contains_cidr)?;
    overload!(env, "containsCIDR", "cidr_contains_cidr", member t(), [t()], contains_cidr)?;
    overload!(env, "ip", "cidr_ip", member t(), [], |a| Ok(opaque(Ip(arg::<Cidr>(a, 0, "a CIDR")?.ip))))?;
    overload!(env, "masked", "cidr_masked", member t(), [], |a| {
        let c = arg::<Cidr>(a, 0, "a CIDR")?;
        Ok(opaque(Cidr { ip: c.masked(), prefix: c.prefix }))
    })?;
    overload!(env, "prefixLength", "cidr_prefix_length", member t(), [], |a| {
        Ok(Value::Int(i64::from(arg::<Cidr>(a, 0, "a CIDR")?.prefix)))
    })
}

fn contains_ip(args: &[Value]) -> Outcome {
    let cidr = arg::<Cidr>(args, 0, "a CIDR")?;
    Ok(Value::Bool(cidr.contains(ip_argument(args, 1)?)))
}

fn contains_cidr(args: &[Value]) -> Outcome {
    let cidr = arg::<Cidr>(args, 0, "a CIDR")?;
    let (ip, prefix) = cidr_argument(args, 1)?;
    Ok(Value::Bool(prefix >= cidr.prefix && cidr.contains(ip)))
}

// ---------------------------------------------------------------------------------------------
// Quantities.

/// A Kubernetes resource quantity (`500m`, `1.5Gi`, `2e3`), exactly: `mantissa × 10^exponent`.
#[derive(Debug)]
struct Quantity {
    mantissa: i128,
    exponent: i32,
    text: String,
    /// Whether Kubernetes would hold it as a scaled int64 with a scale of at least 0: only
    /// those answer `isInteger()` and `asInteger()`, so `1000m`, `1.0` and `1.5Gi` do not.
    integral: bool,
}

impl PartialEq for Quantity {
    fn eq(&self, other: &Self) -> bool {
        self.cmp_value(other) == Ordering::Equal
    }
}

impl Eq for Quantity {}

impl Opaque for Quantity {
    fn runtime_type_name(&self) -> &'static str {
        "kubernetes.Quantity"
    }
}

impl Quantity {
    fn parse(text: &str) -> Result<Self, String> {
        let bad = || {
            format!(
                "quantity {text:?} is not valid: expected a number with an optional suffix such as 500m, 1.5Gi or 2e3"
            )
        };
        let (sign, rest) = match text.as_bytes().first() {
            Some(b'-') => (-1, &text[1..]),
            Some(b'+') => (1, &text[1..]),
            _ => (1, text),
        };
        let number_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let (number, suffix) = rest.split_at(number_len);
        let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
        if (whole.is_empty() && fraction.is_empty()) || fraction.contains('.') || number.len() > 40
        {
            return Err(bad());
        }
        let digits = format!("{whole}{fraction}");
        let mut mantissa: i128 = digits.parse().map_err(|_| bad())?;
        let mut exponent = -i32::try_from(fraction.len()).map_err(|_| bad())?;
        let (decimal, binary): (i32, u32) = match suffix {
            "" => (0, 0),
            "n" => (-9, 0),
            "u" => (-6, 0),
            "m" => (-3, 0),
            "k" => (3, 0),
            "M" => (6, 0),
            "G" => (9, 0),
            "T" => (12, 0),
            "P" => (15, 0),
            "E" => (18, 0),
            "Ki" => (0, 1),
            "Mi" => (0, 2),
            "Gi" => (0, 3),
            "Ti" => (0, 4),
            "Pi" => (0, 5),
            "Ei" => (0, 6),
            s if s.starts_with(['e', 'E']) && s.len() > 1 => {
                let e: i32 = s[1..].parse().map_err(|_| bad())?;
                if e.abs() > 60 {
                    return Err(bad());
                }
                (e, 0)
            }
            _ => return Err(bad()),
        };
        for _ in 0..binary {
            mantissa = mantissa.checked_mul(1024).ok_or_else(bad)?;
        }
        exponent += decimal;
        let significant = digits.trim_start_matches('0').len();
        let integral = if binary > 0 {
            fraction.is_empty() && i64::try_from(mantissa).is_ok()
        } else {
            exponent >= 0 && significant <= 18
        };
        Ok(Self {
            mantissa: mantissa * sign,
            exponent,
            text: text.to_owned(),
            integral,
        }
        .normalized())
    }

    fn normalized(mut self) -> Self {
        if self.mantissa == 0 {
            self.exponent = 0;
        }
        while self.mantissa != 0 && self.mantissa % 10 == 0 {
            self.mantissa /= 10;
            self.exponent += 1;
        }
        self
    }

    /// Both mantissas at the smaller exponent, or `None` when that overflows.
    fn aligned(&self, other: &Self) -> Option<(i128, i128, i32)> {
        let exponent = self.exponent.min(other.exponent);
        let scale = |q: &Self| {
            let shift = u32::try_from(q.exponent - exponent).ok()?;
            10_i128
                .checked_pow(shift)
                .and_then(|p| q.mantissa.checked_mul(p))
        };
        Some((scale(self)?, scale(other)?, exponent))
    }

    fn cmp_value(&self, other: &Self) -> Ordering {
        match self.aligned(other) {
            Some((a, b, _)) => a.cmp(&b),
            // Only wildly different magnitudes overflow: compare by sign, then magnitude.
            None => self
                .mantissa
                .signum()
                .cmp(&other.mantissa.signum())
                .then(self.as_f64().total_cmp(&other.as_f64())),
        }
    }

    fn as_f64(&self) -> f64 {
        #[allow(clippy::cast_precision_loss)] // an approximation is what is asked for
        let mantissa = self.mantissa as f64;
        mantissa * 10_f64.powi(self.exponent)
    }

    fn combine(&self, other: &Self, negate: bool) -> Result<Self, String> {
        let (a, b, exponent) = self.aligned(other).ok_or("quantity overflow")?;
        let b = if negate {
            b.checked_neg().ok_or("quantity overflow")?
        } else {
            b
        };
        let mantissa = a.checked_add(b).ok_or("quantity overflow")?;
        let result = Self {
            mantissa,
            exponent,
            text: String::new(),
            integral: self.integral && other.integral,
        }
        .normalized();
        Ok(Self {
            text: result.canonical(),
            ..result
        })
    }

    fn canonical(&self) -> String {
        if self.exponent >= 0 {
            let whole = 10_i128
                .checked_pow(self.exponent.unsigned_abs())
                .and_then(|p| self.mantissa.checked_mul(p));
            if let Some(whole) = whole {
                return whole.to_string();
            }
            return format!("{}e{}", self.mantissa, self.exponent);
        }
        format!("{}e{}", self.mantissa, self.exponent)
    }

    fn as_integer(&self) -> Result<i64, String> {
        let not_integer = || "cannot convert value to integer".to_owned();
        if !self.integral || self.exponent < 0 {
            return Err(not_integer());
        }
        let value = 10_i128
            .checked_pow(self.exponent.unsigned_abs())
            .and_then(|p| self.mantissa.checked_mul(p))
            .ok_or_else(not_integer)?;
        i64::try_from(value).map_err(|_| not_integer())
    }
}

fn quantity_argument(args: &[Value], index: usize) -> Result<Quantity, String> {
    if let Some(Value::Int(i)) = args.get(index) {
        return Ok(Quantity {
            mantissa: i128::from(*i),
            exponent: 0,
            text: i.to_string(),
            integral: true,
        }
        .normalized());
    }
    let q = arg::<Quantity>(args, index, "a quantity")?;
    Ok(Quantity {
        mantissa: q.mantissa,
        exponent: q.exponent,
        text: q.text.clone(),
        integral: q.integral,
    })
}

fn quantity(env: &mut Env) -> Result<(), DeclarationError> {
    let t = || Type::new_opaque_type("kubernetes.Quantity");
    overload!(
        env,
        "quantity",
        "string_to_quantity",
        [STRING_TYPE],
        |a| Ok(opaque(Quantity::parse(string(a, 0)?)?))
    )?;
    overload!(env, "isQuantity", "is_quantity", [STRING_TYPE], |a| Ok(
        Value::Bool(Quantity::parse(string(a, 0)?).is_ok())
    ))?;
    // Kubernetes declares `sign` global only: `sign(q)`, not `q.sign()`.
    overload!(env, "sign", "quantity_sign", [t()], |a| {
        Ok(Value::Int(
            quantity_argument(a, 0)?
                .mantissa
                .signum()
                .try_into()
                .unwrap_or(0),
        ))
    })?;
    overload!(env, "isInteger", "quantity_is_integer", member t(), [], |a| {
        Ok(Value::Bool(quantity_argument(a, 0)?.as_integer().is_ok()))
    })?;
    overload!(env, "asInteger", "quantity_as_integer", member t(), [], |a| {
        Ok(Value::Int(quantity_argument(a, 0)?.as_integer()?))
    })?;
    overload!(env, "asApproximateFloat", "quantity_as_float", member t(), [], |a| {
        Ok(Value::Float(quantity_argument(a, 0)?.as_f64()))
    })?;
    overload!(env, "add", "quantity_add", member t(), [t()], |a| Ok(opaque(quantity_argument(a, 0)?.combine(&quantity_argument(a, 1)?, false)?)))?;
    overload!(env, "add", "quantity_add_int", member t(), [INT_TYPE], |a| Ok(opaque(quantity_argument(a, 0)?.combine(&quantity_argument(a, 1)?, false)?)))?;
    overload!(env, "sub", "quantity_sub", member t(), [t()], |a| Ok(opaque(quantity_argument(a, 0)?.combine(&quantity_argument(a, 1)?, true)?)))?;
    overload!(env, "sub", "quantity_sub_int", member t(), [INT_TYPE], |a| Ok(opaque(quantity_argument(a, 0)?.combine(&quantity_argument(a, 1)?, true)?)))?;
    overload!(env, "compareTo", "quantity_compare_to", member t(), [t()], |a| {
        Ok(Value::Int(ordering(quantity_argument(a, 0)?.cmp_value(&quantity_argument(a, 1)?))))
    })?;
    overload!(env, "isLessThan", "quantity_is_less_than", member t(), [t()], |a| {
        Ok(Value::Bool(quantity_argument(a, 0)?.cmp_value(&quantity_argument(a, 1)?) == Ordering::Less))
    })?;
    overload!(env, "isGreaterThan", "quantity_is_greater_than", member t(), [t()], |a| {
        Ok(Value::Bool(quantity_argument(a, 0)?.cmp_value(&quantity_argument(a, 1)?) == Ordering::Greater))
    })
}

fn ordering(order: Ordering) -> i64 {
    match order {
        Ordering::Less => -1,
        Ordering::Equal => 0,
        Ordering::Greater => 1,
    }
}

// ---------------------------------------------------------------------------------------------
// Semantic versions.

/// A semantic version, semver.org 2.0.0.
#[derive(Debug)]
struct Semver {
    major: u64,
    minor: u64,
    patch: u64,
    pre: Vec<String>,
    build: Vec<String>,
}

impl PartialEq for Semver {
    fn eq(&self, other: &Self) -> bool {
        self.precedence(other) == Ordering::Equal
    }
}

impl Eq for Semver {}

impl Opaque for Semver {
    fn runtime_type_name(&self) -> &'static str {
        "kubernetes.Semver"
    }
}

impl std::fmt::Display for Semver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.patch)?;
        if !self.pre.is_empty() {
            write!(f, "-{}", self.pre.join("."))?;
        }
        if !self.build.is_empty() {
            write!(f, "+{}", self.build.join("."))?;
        }
        Ok(())
    }
}

impl Semver {
    /// Strict semver 2.0.0, as KRO's Semver library (version 0: no normalizing overloads)
    /// reads it.
    fn parse(text: &str) -> Result<Self, String> {
        let bad = || format!("{text:?} is not a valid semantic version");
        let rest = text;
        let (rest, build) = match rest.split_once('+') {
            Some((r, b)) => (r, Some(b)),
            None => (rest, None),
        };
        let (core, pre) = match rest.split_once('-') {
            Some((c, p)) => (c, Some(p)),
            None => (rest, None),
        };
        let numbers: Vec<&str> = core.split('.').collect();
        if numbers.len() != 3 {
            return Err(bad());
        }
        let mut parsed = [0_u64; 3];
        for (slot, number) in parsed.iter_mut().zip(&numbers) {
            let leading_zero = number.len() > 1 && number.starts_with('0');
            if number.is_empty() || !number.bytes().all(|b| b.is_ascii_digit()) || leading_zero {
                return Err(bad());
            }
            *slot = number.parse().map_err(|_| bad())?;
        }
        let identifiers = |part: Option<&str>, numeric_rule: bool| -> Result<Vec<String>, String> {
            let Some(part) = part else {
                return Ok(Vec::new());
            };
            part.split('.')
                .map(|id| {
                    let valid = !id.is_empty()
                        && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                        && !(numeric_rule
                            && id.len() > 1
                            && id.starts_with('0')
                            && id.bytes().all(|b| b.is_ascii_digit()));
                    if valid { Ok(id.to_owned()) } else { Err(bad()) }
                })
                .collect()
        };
        Ok(Self {
            major: parsed[0],
            minor: parsed[1],
            patch: parsed[2],
            pre: identifiers(pre, true)?,
            build: identifiers(build, false)?,
        })
    }

    fn precedence(&self, other: &Self) -> Ordering {
        (self.major, self.minor, self.patch)
            .cmp(&(other.major, other.minor, other.patch))
            .then_with(|| match (self.pre.is_empty(), other.pre.is_empty()) {
                (true, true) => Ordering::Equal,
                (true, false) => Ordering::Greater,
                (false, true) => Ordering::Less,
                (false, false) => {
                    for (a, b) in self.pre.iter().zip(&other.pre) {
                        let order = match (a.parse::<u64>(), b.parse::<u64>()) {
                            (Ok(x), Ok(y)) => x.cmp(&y),
                            (Ok(_), Err(_)) => Ordering::Less,
                            (Err(_), Ok(_)) => Ordering::Greater,
                            (Err(_), Err(_)) => a.cmp(b),
                        };
                        if order != Ordering::Equal {
                            return order;
                        }
                    }
                    self.pre.len().cmp(&other.pre.len())
                }
            })
    }
}

fn semver(env: &mut Env) -> Result<(), DeclarationError> {
    let t = || Type::new_opaque_type("kubernetes.Semver");
    overload!(env, "semver", "string_to_semver", [STRING_TYPE], |a| Ok(
        opaque(Semver::parse(string(a, 0)?)?)
    ))?;
    overload!(env, "isSemver", "is_semver", [STRING_TYPE], |a| Ok(
        Value::Bool(Semver::parse(string(a, 0)?).is_ok())
    ))?;
    overload!(env, "string", "semver_to_string", [t()], |a| Ok(
        Value::String(Arc::new(arg::<Semver>(a, 0, "a semver")?.to_string()))
    ))?;
    overload!(env, "major", "semver_major", member t(), [], |a| Ok(Value::Int(i64::try_from(arg::<Semver>(a, 0, "a semver")?.major).map_err(|e| e.to_string())?)))?;
    overload!(env, "minor", "semver_minor", member t(), [], |a| Ok(Value::Int(i64::try_from(arg::<Semver>(a, 0, "a semver")?.minor).map_err(|e| e.to_string())?)))?;
    overload!(env, "patch", "semver_patch", member t(), [], |a| Ok(Value::Int(i64::try_from(arg::<Semver>(a, 0, "a semver")?.patch).map_err(|e| e.to_string())?)))?;
    overload!(env, "compareTo", "semver_compare_to", member t(), [t()], |a| {
        Ok(Value::Int(ordering(arg::<Semver>(a, 0, "a semver")?.precedence(arg::<Semver>(a, 1, "a semver")?))))
    })?;
    overload!(env, "isLessThan", "semver_is_less_than", member t(), [t()], |a| {
        Ok(Value::Bool(arg::<Semver>(a, 0, "a semver")?.precedence(arg::<Semver>(a, 1, "a semver")?) == Ordering::Less))
    })?;
    overload!(env, "isGreaterThan", "semver_is_greater_than", member t(), [t()], |a| {
        Ok(Value::Bool(arg::<Semver>(a, 0, "a semver")?.precedence(arg::<Semver>(a, 1, "a semver")?) == Ordering::Greater))
    })
}

// ---------------------------------------------------------------------------------------------
// URLs.

/// A URL as Go's `url.ParseRequestURI` reads it: an absolute URI or an absolute path.
#[derive(Debug, PartialEq, Eq)]
struct Url {
    text: String,
    scheme: String,
    host: String,
    path: String,
    query: String,
}

impl Opaque for Url {
    fn runtime_type_name(&self) -> &'static str {
        "kubernetes.URL"
    }
}

impl Url {
    fn parse(text: &str) -> Result<Self, String> {
        let bad = || {
            format!(
                "URL parse error during conversion from string: {text:?} is not an absolute URI \
                 or an absolute path"
            )
        };
        if text.chars().any(char::is_control) {
            return Err(bad());
        }
        // Go's url.Parse splits the fragment off first; it is not part of any accessor.
        let without_fragment = text.split_once('#').map_or(text, |(r, _)| r);
        let (rest, query) = match without_fragment.split_once('?') {
            Some((r, q)) => (r, q.to_owned()),
            None => (without_fragment, String::new()),
        };
        if let Some(path) = rest.strip_prefix('/').map(|_| rest) {
            return Ok(Self {
                text: text.to_owned(),
                scheme: String::new(),
                host: String::new(),
                path: path.to_owned(),
                query,
            });
        }
        let (scheme, rest) = rest.split_once(':').ok_or_else(bad)?;
        let scheme_ok = scheme
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic())
            && scheme
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c));
        if !scheme_ok {
            return Err(bad());
        }
        let (host, path) = match rest.strip_prefix("//") {
            Some(authority) => {
                let end = authority.find('/').unwrap_or(authority.len());
                let (host, path) = authority.split_at(end);
                let host = host.rsplit_once('@').map_or(host, |(_, h)| h);
                (host.to_owned(), path.to_owned())
            }
            None => (String::new(), rest.to_owned()),
        };
        if let Some(port) = split_host_port(&host).1
            && !port.bytes().all(|b| b.is_ascii_digit())
        {
            return Err(bad());
        }
        Ok(Self {
            text: text.to_owned(),
            scheme: scheme.to_owned(),
            host,
            path,
            query,
        })
    }
}

/// `host:port` split as Go's `url.URL.Hostname` and `Port` do, IPv6 brackets removed.
fn split_host_port(host: &str) -> (&str, Option<&str>) {
    if let Some(rest) = host.strip_prefix('[') {
        return match rest.split_once(']') {
            Some((ip, tail)) => (ip, tail.strip_prefix(':')),
            None => (rest, None),
        };
    }
    match host.rsplit_once(':') {
        Some((name, port)) => (name, Some(port)),
        None => (host, None),
    }
}

/// The path as Go's `URL.EscapedPath` writes it: characters a path may not hold (spaces,
/// non-ASCII) percent-encoded, existing escapes kept.
fn escape_path(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    for byte in path.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=:@/%".contains(&byte) {
            out.push(char::from(byte));
        } else {
            let _ = std::fmt::Write::write_fmt(&mut out, format_args!("%{byte:02X}"));
        }
    }
    out
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        match (
            bytes[i],
            bytes.get(i + 1).copied().and_then(hex),
            bytes.get(i + 2).copied().and_then(hex),
        ) {
            (b'%', Some(h), Some(l)) => {
                out.push(u8::try_from(h * 16 + l).unwrap_or(b'?'));
                i += 3;
            }
            (b'+', ..) => {
                out.push(b' ');
                i += 1;
            }
            (b, ..) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn url(env: &mut Env) -> Result<(), DeclarationError> {
    let t = || Type::new_opaque_type("kubernetes.URL");
    overload!(env, "url", "string_to_url", [STRING_TYPE], |a| Ok(opaque(
        Url::parse(string(a, 0)?)?
    )))?;
    overload!(env, "isURL", "is_url", [STRING_TYPE], |a| Ok(Value::Bool(
        Url::parse(string(a, 0)?).is_ok()
    )))?;
    overload!(env, "string", "url_to_string", [t()], |a| Ok(
        Value::String(Arc::new(arg::<Url>(a, 0, "a URL")?.text.clone()))
    ))?;
    overload!(env, "getScheme", "url_get_scheme", member t(), [], |a| Ok(Value::String(Arc::new(arg::<Url>(a, 0, "a URL")?.scheme.clone()))))?;
    overload!(env, "getHost", "url_get_host", member t(), [], |a| Ok(Value::String(Arc::new(arg::<Url>(a, 0, "a URL")?.host.clone()))))?;
    overload!(env, "getHostname", "url_get_hostname", member t(), [], |a| {
        Ok(Value::String(Arc::new(split_host_port(&arg::<Url>(a, 0, "a URL")?.host).0.to_owned())))
    })?;
    overload!(env, "getPort", "url_get_port", member t(), [], |a| {
        Ok(Value::String(Arc::new(split_host_port(&arg::<Url>(a, 0, "a URL")?.host).1.unwrap_or("").to_owned())))
    })?;
    overload!(env, "getEscapedPath", "url_get_escaped_path", member t(), [], |a| Ok(Value::String(Arc::new(escape_path(&arg::<Url>(a, 0, "a URL")?.path)))))?;
    overload!(env, "getQuery", "url_get_query", member t(), [], |a| {
        let url = arg::<Url>(a, 0, "a URL")?;
        let mut query: std::collections::HashMap<cel::objects::Key, Vec<Value>> = std::collections::HashMap::new();
        // As Go's url.Query: a pair with a `;` is invalid and dropped.
        for pair in url.query.split('&').filter(|p| !p.is_empty() && !p.contains(';')) {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            query
                .entry(cel::objects::Key::String(Arc::new(percent_decode(k))))
                .or_default()
                .push(Value::String(Arc::new(percent_decode(v))));
        }
        let map: std::collections::HashMap<cel::objects::Key, Value> =
            query.into_iter().map(|(k, v)| (k, Value::List(Arc::new(v)))).collect();
        Ok(Value::Map(map.into()))
    })
}

#[cfg(test)]
mod tests {
    use super::super::testing::{assert_error, assert_true, eval};
    use crate::cel::Value;

    #[test]
    fn lists() {
        assert_true(&[
            "[1, 2, 2, 3].isSorted()",
            "![2, 1].isSorted()",
            "['a', 'b'].isSorted()",
            "[].isSorted()",
            "[1, 2, 3].sum() == 6",
            "[1.5, 2.5].sum() == 4.0",
            "[1u, 2u].sum() == 3u",
            "[duration('1s'), duration('2s')].sum() == duration('3s')",
            "[].sum() == 0",
            "[3, 1, 2].min() == 1",
            "[3, 1, 2].max() == 3",
            "['b', 'a'].min() == 'a'",
            "[1, 2, 3, 2].indexOf(2) == 1",
            "[1, 2, 3, 2].lastIndexOf(2) == 3",
            "[1, 2].indexOf(9) == -1",
        ]);
        assert_error("[].min()", "min called on empty list");
        assert_error("[9223372036854775807, 1].sum()", "overflow");
    }

    #[test]
    fn regex() {
        assert_true(&[
            "'abc 123'.find('[0-9]+') == '123'",
            "'abc'.find('[0-9]+') == ''",
            "'123 abc 456'.findAll('[0-9]+') == ['123', '456']",
            "'123 abc 456'.findAll('[0-9]+', 1) == ['123']",
            "'123 abc 456'.findAll('[0-9]+', 0) == []",
            "'123 abc 456'.findAll('[0-9]+', -1) == ['123', '456']",
        ]);
        assert_error("'a'.find('(')", "Illegal regex");
    }

    #[test]
    fn ip() {
        assert_true(&[
            "isIP('1.2.3.4')",
            "isIP('2001:db8::68')",
            "!isIP('1.2.3')",
            "!isIP('::ffff:1.2.3.4')",
            "!isIP('fe80::1%eth0')",
            "ip('1.2.3.4').family() == 4",
            "ip('::1').family() == 6",
            "ip.isCanonical('2001:db8::68')",
            "!ip.isCanonical('2001:DB8::68')",
            "ip('127.0.0.1').isLoopback()",
            "ip('0.0.0.0').isUnspecified()",
            "ip('224.0.0.1').isLinkLocalMulticast()",
            "ip('ff02::1').isLinkLocalMulticast()",
            "ip('169.254.1.1').isLinkLocalUnicast()",
            "ip('fe80::1').isLinkLocalUnicast()",
            "ip('10.0.0.1').isGlobalUnicast()",
            "!ip('255.255.255.255').isGlobalUnicast()",
            "ip('1.2.3.4') == ip('1.2.3.4')",
            "!isIP('127.0.0.256') && !isIP('192.168.0.1.0') && !isIP('01.2.3.4')",
            "!ip.isCanonical('2001:db8::0:0:0:abcd')",
            "!ip('fd00::1').isLinkLocalMulticast()",
            "!ip('ff00::1').isGlobalUnicast()",
            "ip('192.168.0.1').isGlobalUnicast()",
            "string(ip('1.2.3.4')) == '1.2.3.4'",
        ]);
        assert_error("ip('nope')", "not valid");
        assert_eq!(eval("ip('::1')"), Value::String("::1".into()));
    }

    #[test]
    fn cidr() {
        assert_true(&[
            "isCIDR('10.0.0.0/8')",
            "!isCIDR('10.0.0.0/33')",
            "!isCIDR('10.0.0.0')",
            "cidr('10.0.0.0/8').containsIP('10.1.2.3')",
            "cidr('10.0.0.0/8').containsIP(ip('10.1.2.3'))",
            "!cidr('10.0.0.0/8').containsIP('11.0.0.1')",
            "!cidr('10.0.0.0/8').containsIP('::1')",
            "cidr('10.0.0.0/8').containsCIDR('10.1.0.0/16')",
            "!cidr('10.0.0.0/16').containsCIDR('10.0.0.0/8')",
            "cidr('10.0.0.0/8').containsCIDR(cidr('10.0.0.0/8'))",
            "cidr('192.168.1.5/24').ip() == ip('192.168.1.5')",
            "cidr('192.168.1.5/24').masked() == cidr('192.168.1.0/24')",
            "cidr('2001:db8::/32').prefixLength() == 32",
            "cidr('2001:db8::1/32').masked() == cidr('2001:db8::/32')",
            "string(cidr('10.0.0.0/8')) == '10.0.0.0/8'",
            "!cidr('192.168.0.0/24').containsCIDR('192.168.0.0/23')",
            "!cidr('192.168.0.0/24').containsCIDR(cidr('192.169.0.1/32'))",
            "cidr('192.168.0.1/24') != cidr('192.168.0.1/24').masked()",
            "cidr('::1/128').prefixLength() == 128",
        ]);
    }

    #[test]
    fn quantity() {
        assert_true(&[
            "isQuantity('500m')",
            "isQuantity('1.5Gi')",
            "isQuantity('2e3')",
            "!isQuantity('1.5Gb')",
            "!isQuantity('')",
            "quantity('1Gi').asInteger() == 1073741824",
            "quantity('1.5k').asInteger() == 1500",
            "quantity('500m').asApproximateFloat() == 0.5",
            "!quantity('500m').isInteger()",
            "quantity('2e3').isInteger()",
            "sign(quantity('-1')) == -1",
            "sign(quantity('0')) == 0",
            "quantity('1').add(quantity('500m')) == quantity('1500m')",
            "quantity('1').add(2) == quantity('3')",
            "quantity('1Gi').sub(quantity('512Mi')) == quantity('512Mi')",
            "sign(quantity('1').sub(2)) == -1",
            "quantity('50k').add(20).sub(quantity('100k')).asInteger() == -49980",
            "quantity('50k').add(quantity('20')) == quantity('50.02k')",
            "quantity('200M').compareTo(quantity('0.2G')) == 0",
            "quantity('50M').compareTo(quantity('50Mi')) == -1",
            "quantity('50.703k').asApproximateFloat() == 50703.0",
            "!isQuantity('200K') && !isQuantity('1,3G') && !isQuantity('Mi')",
            "!quantity('1000m').isInteger() && !quantity('1.0').isInteger() && !quantity('1.5Gi').isInteger()",
            "quantity('50').isInteger()",
            "!quantity('9999999999999999999999999999999999999G').isInteger()",
            "quantity('1k').compareTo(quantity('1000')) == 0",
            "quantity('1Ki').compareTo(quantity('1k')) == 1",
            "quantity('100m').isLessThan(quantity('1'))",
            "quantity('2Gi').isGreaterThan(quantity('2G'))",
            "quantity('1000m') == quantity('1')",
        ]);
        assert_error(
            "quantity('500m').asInteger()",
            "cannot convert value to integer",
        );
        assert_error(
            "quantity('9Ei').asInteger()",
            "cannot convert value to integer",
        );
        assert_error("quantity('1').sign()", "");
    }

    #[test]
    fn semver() {
        assert_true(&[
            "isSemver('1.2.3')",
            "isSemver('1.2.3-rc.1+build.5')",
            "!isSemver('v1.2.3')",
            "!isSemver('1.2')",
            "!isSemver('01.2.3')",
            "!isSemver(' 1.0.0')",
            "isSemver('1.2.3-beta.1+build.1')",
            "semver('1.2.3').major() == 1 && semver('1.2.3').minor() == 2 && semver('1.2.3').patch() == 3",
            "semver('1.2.3').isLessThan(semver('1.10.0'))",
            "semver('1.0.0').isGreaterThan(semver('1.0.0-rc.1'))",
            "semver('1.0.0-alpha').isLessThan(semver('1.0.0-alpha.1'))",
            "semver('1.0.0-alpha.1').isLessThan(semver('1.0.0-alpha.beta'))",
            "semver('1.0.0-2').isLessThan(semver('1.0.0-10'))",
            "semver('1.2.3').compareTo(semver('1.2.3+other')) == 0",
            "string(semver('1.2.3-rc.1')) == '1.2.3-rc.1'",
        ]);
    }

    #[test]
    fn url() {
        assert_true(&[
            "isURL('https://example.com/path')",
            "isURL('/absolute/path')",
            "!isURL('example.com')",
            "!isURL('https://example.com:port')",
            "url('https://example.com:8080/a/b?x=1').getScheme() == 'https'",
            "url('https://example.com:8080/a/b').getHost() == 'example.com:8080'",
            "url('https://example.com:8080/a/b').getHostname() == 'example.com'",
            "url('https://example.com:8080/a/b').getPort() == '8080'",
            "url('https://example.com/a/b').getPort() == ''",
            "url('https://[::1]:80/').getHostname() == '::1'",
            "url('https://[::1]:80/').getHost() == '[::1]:80'",
            "url('https://example.com/a%20b').getEscapedPath() == '/a%20b'",
            "url('https://example.com/path with spaces/').getEscapedPath() == '/path%20with%20spaces/'",
            "url('https://example.com').getEscapedPath() == ''",
            "url('https://example.com/path?k1=a&k2=b&k2=c').getQuery() == {'k1': ['a'], 'k2': ['b', 'c']}",
            "url('https://example.com/path?').getQuery() == {}",
            "url('https://example.com/?a=1;b=2&c=3').getQuery() == {'c': ['3']}",
            "isURL('https://user:pass@example.com:80/path?query=val#fragment')",
            "url('https://example.com/p?q=1#frag').getQuery() == {'q': ['1']}",
            "!isURL('https://a:b:c/')",
            "!isURL('../relative-path')",
            "isURL('mailto:x@y')",
            "url('/path').getScheme() == ''",
            "url('https://example.com/?k=v1&k=v2&x=%20y').getQuery() == {'k': ['v1', 'v2'], 'x': [' y']}",
            "url('/path?q=1').getQuery() == {'q': ['1']}",
        ]);
    }
}
