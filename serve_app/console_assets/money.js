// Money is whole minor units: shown by moving the decimal point in the digits, never by
// float arithmetic. The exponents are domain/money.py's MINOR_UNITS (a test keeps them equal).

export const MINOR_UNITS = { CNY: 2, USD: 2, EUR: 2, HKD: 2, JPY: 0 };

// As domain.money.Money.format: "CNY 380.00", "CNY -12.05", "JPY 500".
export function formatMoney(minor, currency) {
  const amount = BigInt(minor);
  const exp = MINOR_UNITS[currency] ?? 2;
  const sign = amount < 0n ? "-" : "";
  const digits = (amount < 0n ? -amount : amount).toString().padStart(exp + 1, "0");
  const whole = digits.slice(0, digits.length - exp);
  const frac = exp ? "." + digits.slice(digits.length - exp) : "";
  return `${currency} ${sign}${whole}${frac}`;
}
