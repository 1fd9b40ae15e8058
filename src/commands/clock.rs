//! Times as the engine and the command line write them: RFC 3339 in, Unix seconds out.

/// Seconds since the epoch of an RFC 3339 time: `2026-11-28T13:14:15Z`, with or without
/// a fraction (the engine writes nanoseconds), in UTC (`Z`) or at an offset (`+02:00`).
#[allow(clippy::many_single_char_names)]
pub(crate) fn rfc3339_secs(s: &str) -> Option<i64> {
    let (date, time) = s.split_once(['T', 't', ' '])?;
    let mut d = date.split('-');
    let (y, mo, da) = (
        number(d.next()?, 4)?,
        number(d.next()?, 2)?,
        number(d.next()?, 2)?,
    );
    if d.next().is_some() || !(1..=12).contains(&mo) || !(1..=31).contains(&da) {
        return None;
    }
    // The zone: `Z`, or the last `+` or `-` (the date's dashes are not in `time`).
    let (clock, offset) = if let Some(clock) = time.strip_suffix(['Z', 'z']) {
        (clock, 0)
    } else {
        let at = time.rfind(['+', '-'])?;
        let (clock, zone) = time.split_at(at);
        let (hours, minutes) = zone[1..].split_once(':')?;
        let secs = number(hours, 2)? * 3_600 + number(minutes, 2)? * 60;
        (clock, if zone.starts_with('-') { -secs } else { secs })
    };
    let clock = match clock.split_once('.') {
        Some((whole, fraction)) if fraction.bytes().all(|b| b.is_ascii_digit()) => whole,
        Some(_) => return None,
        None => clock,
    };
    let mut t = clock.split(':');
    let (h, mi, se) = (
        number(t.next()?, 2)?,
        number(t.next()?, 2)?,
        number(t.next()?, 2)?,
    );
    if t.next().is_some() || h > 23 || mi > 59 || se > 60 {
        return None;
    }
    // Days from civil date (Howard Hinnant's algorithm).
    let y = if mo <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (mo + if mo > 2 { -3 } else { 9 }) + 2) / 5 + da - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(days * 86_400 + h * 3_600 + mi * 60 + se - offset)
}

/// Exactly `digits` ASCII digits.
fn number(s: &str, digits: usize) -> Option<i64> {
    (s.len() == digits && s.bytes().all(|b| b.is_ascii_digit()))
        .then(|| s.parse().ok())
        .flatten()
}

#[cfg(test)]
mod tests {
    use super::rfc3339_secs;

    #[test]
    fn engine_and_user_times_parse() {
        assert_eq!(rfc3339_secs("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(
            rfc3339_secs("2026-11-28T13:14:15.123456789Z"),
            Some(1_795_871_655)
        );
        assert_eq!(
            rfc3339_secs("2026-11-28T15:14:15+02:00"),
            Some(1_795_871_655)
        );
        assert_eq!(
            rfc3339_secs("2026-11-28T08:14:15.5-05:00"),
            Some(1_795_871_655)
        );
    }

    #[test]
    fn what_is_not_a_time_is_refused() {
        for text in [
            "",
            "10m",
            "2026-11-28",
            "2026-11-28T13:14:15",
            "2026-13-01T00:00:00Z",
            "2026-11-28T25:00:00Z",
            "2026-11-28T13:14Z",
            "2026-11-28T13:14:15.x Z",
            "26-11-28T13:14:15Z",
        ] {
            assert_eq!(rfc3339_secs(text), None, "{text}");
        }
    }
}
