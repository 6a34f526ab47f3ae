import CreditsCore
import Foundation

/// The stored form of a `LedgerOutcome`: the JSON that Swift's synthesized `Codable` reads
/// (`{"spent":{"_0":{...}}}`), written by hand because the writer encodes one per operation and
/// Foundation's `JSONEncoder` cost a third of the writer's time. Replays (rare) decode it with
/// `JSONDecoder`; a test pins the two together.
enum OutcomeCoding {
    static func encode(_ outcome: LedgerOutcome) -> String {
        var o = JSONObjectWriter()
        switch outcome {
        case .purchased(let r):
            o.string("purchaseId", r.purchaseId)
            o.string("userId", r.userId)
            o.string("package", r.package)
            o.int("credits", r.credits)
            o.int("baseCredits", r.baseCredits)
            o.int("bonusCredits", r.bonusCredits)
            o.int("priceCents", r.priceCents)
            o.string("paymentMethod", r.paymentMethod.rawValue)
            o.string("paymentId", r.paymentId)
            o.string("status", r.status)
            o.int("balance", r.balance)
            if let repaid = r.arrearsRepaid { o.int("arrearsRepaid", repaid) }
            return wrap("purchased", o)
        case .spent(let r):
            o.string("transactionId", r.transactionId)
            o.string("userId", r.userId)
            o.int("credits", r.credits)
            o.string("fileUploadId", r.fileUploadId)
            o.int("balance", r.balance)
            return wrap("spent", o)
        case .adjusted(let r):
            o.string("transactionId", r.transactionId)
            o.string("adjustmentId", r.adjustmentId)
            o.string("userId", r.userId)
            o.int("credits", r.credits)
            o.int("balance", r.balance)
            return wrap("adjusted", o)
        case .queued(let r):
            o.string("uploadId", r.uploadId)
            o.string("userId", r.userId)
            o.string("status", r.status)
            o.int("creditsReserved", r.creditsReserved)
            o.bool("sponsored", r.sponsored)
            o.int("balance", r.balance)
            return wrap("queued", o)
        case .settled(let r):
            o.string("transactionId", r.transactionId)
            o.string("uploadId", r.uploadId)
            o.string("userId", r.userId)
            o.int("credits", r.credits)
            o.string("status", r.status)
            o.int("balance", r.balance)
            return wrap("settled", o)
        case .milestoneGranted(let r):
            o.string("transactionId", r.transactionId)
            o.string("userId", r.userId)
            o.string("milestone", r.milestone)
            o.int("credits", r.credits)
            o.int("balance", r.balance)
            return wrap("milestoneGranted", o)
        case .sponsoredUpload(let r):
            o.string("transactionId", r.transactionId)
            o.string("userId", r.userId)
            o.string("fileUploadId", r.fileUploadId)
            o.int("credits", r.credits)
            o.int("remainingSponsored", Int64(r.remainingSponsored))
            o.int("balance", r.balance)
            return wrap("sponsoredUpload", o)
        case .paymentEvent(let r):
            o.string("eventId", r.eventId)
            o.string("paymentMethod", r.paymentMethod.rawValue)
            o.string("paymentId", r.paymentId)
            o.string("event", r.event.rawValue)
            if let purchaseId = r.purchaseId { o.string("purchaseId", purchaseId) }
            if let userId = r.userId { o.string("userId", userId) }
            o.string("status", r.status)
            o.int("creditsChange", r.creditsChange)
            if let balance = r.balance { o.int("balance", balance) }
            return wrap("paymentEvent", o)
        case .expired(let r):
            o.string("userId", r.userId)
            o.int("credits", r.credits)
            o.int("balance", r.balance)
            return wrap("expired", o)
        case .rejected(let e):
            o.string("code", e.code.rawValue)
            o.string("message", e.message)
            if let field = e.field { o.string("field", field) }
            if let required = e.required { o.int("required", required) }
            if let available = e.available { o.int("available", available) }
            if let suggested = e.suggestedPackage { o.string("suggestedPackage", suggested) }
            if let owed = e.owed { o.int("owed", owed) }
            return wrap("rejected", o)
        }
    }

    static func decode(_ text: String) throws -> LedgerOutcome {
        try JSONDecoder().decode(LedgerOutcome.self, from: Data(text.utf8))
    }

    private static func wrap(_ name: String, _ payload: JSONObjectWriter) -> String {
        "{\"\(name)\":{\"_0\":\(payload.finish())}}"
    }
}

/// Writes one flat JSON object of strings and integers.
struct JSONObjectWriter {
    private var text = "{"

    mutating func string(_ key: String, _ value: String) {
        member(key)
        Self.appendQuoted(value, to: &text)
    }

    mutating func int(_ key: String, _ value: Int64) {
        member(key)
        text += String(value)
    }

    mutating func bool(_ key: String, _ value: Bool) {
        member(key)
        text += value ? "true" : "false"
    }

    func finish() -> String { text + "}" }

    private mutating func member(_ key: String) {
        if text.utf8.count > 1 { text += "," }
        Self.appendQuoted(key, to: &text)
        text += ":"
    }

    static func appendQuoted(_ s: String, to out: inout String) {
        out += "\""
        // Identifiers and most messages need no escaping: append them whole.
        if !s.utf8.contains(where: { $0 < 0x20 || $0 == 0x22 || $0 == 0x5C }) {
            out += s
            out += "\""
            return
        }
        for scalar in s.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case _ where scalar.value < 0x20:
                let hex = String(scalar.value, radix: 16)
                out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
            default: out.unicodeScalars.append(scalar)
            }
        }
        out += "\""
    }
}
