import CreditsCore
import Foundation
import Hummingbird
import HummingbirdCore

/// Integer hundredths as a decimal string: 1234 → "12.34", -5 → "-0.05".
enum Decimal2 {
    static func text(_ hundredths: Int64) -> String {
        let sign = hundredths < 0 ? "-" : ""
        let m = hundredths.magnitude
        let frac = m % 100
        return "\(sign)\(m / 100).\(frac < 10 ? "0" : "")\(frac)"
    }
}

enum Timestamp {
    static func iso8601(ms: Int64) -> String {
        let date = Date(timeIntervalSince1970: TimeInterval(ms) / 1000)
        return date.formatted(.iso8601.year().month().day().time(includingFractionalSeconds: true).timeZone(separator: .omitted))
    }
}

extension URI {
    /// The query parameter `name`, or nil when absent. Given twice (`?userId=a&userId=b`), it is
    /// refused rather than one of the two taken, as a JSON body's field given twice is.
    func singleQuery(_ name: String) throws(CreditsError) -> String? {
        let values = queryParameters.getAll(name)
        if values.count > 1 { throw .validation(name, "the query parameter '\(name)' is given more than once") }
        return values.first
    }

    func requiredQuery(_ name: String) throws(CreditsError) -> String {
        guard let value = try singleQuery(name), !value.isEmpty else {
            throw .validation(name, "the query parameter '\(name)' is required")
        }
        return value
    }

    func intQuery(_ name: String) throws(CreditsError) -> Int? {
        guard let raw = try singleQuery(name) else { return nil }
        guard let value = Int(raw) else { throw .validation(name, "must be a whole number") }
        return value
    }
}

/// Dollar amounts from JSON to integer cents without floating point.
enum Cents {
    /// The literal text of a JSON number or string.
    struct Text: Decodable {
        var text: String

        init(_ text: String) {
            self.text = text
        }

        init(from decoder: any Decoder) throws {
            let c = try decoder.singleValueContainer()
            if let s = try? c.decode(String.self) {
                text = s
            } else {
                // Decimal keeps the digits the number was written with.
                text = "\(try c.decode(Decimal.self))"
            }
        }
    }

    /// "0.6" → 60; at most two decimals, not negative.
    static func parse(_ value: Text?, field: String) throws(CreditsError) -> Int64 {
        guard let value else { return 0 }
        let parts = value.text.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count <= 2, !parts[0].isEmpty, parts[0].allSatisfy(\.isNumber), let whole = Int64(parts[0]),
              whole <= 1_000_000
        else { throw .validation(field, "must be an amount in dollars such as 0.60") }
        var cents = whole * 100
        if parts.count == 2 {
            let f = parts[1]
            guard !f.isEmpty, f.count <= 2, f.allSatisfy(\.isNumber), let n = Int64(f) else {
                throw .validation(field, "must be an amount in dollars with at most two decimals")
            }
            cents += f.count == 1 ? n * 10 : n
        }
        return cents
    }
}
