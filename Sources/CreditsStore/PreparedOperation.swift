import CreditsCore
import Crypto
import Foundation

/// An operation validated at the edge and ready for the writer: its keys and request hash.
struct PreparedOperation: Sendable {
    var operation: LedgerOperation
    /// `idem:<Idempotency-Key>` when the caller sent one.
    var headerKey: String?
    /// `LedgerOperation.storedKey`: the natural key, or `file:<id>` for a file upload's payment.
    var storedKey: String
    /// SHA-256 of the operation's canonical form.
    var requestHash: [UInt8]

    init(_ operation: LedgerOperation, idempotencyKey: String?, catalog: Catalog) throws(CreditsError) {
        try operation.validate(catalog: catalog)
        if let idempotencyKey {
            try Identifier.check(idempotencyKey, field: "Idempotency-Key")
        }
        self.operation = operation
        self.headerKey = idempotencyKey.map { "idem:\($0)" }
        self.storedKey = operation.storedKey
        self.requestHash = Array(SHA256.hash(data: Array(operation.canonicalForm.utf8)))
    }

    /// Keys in the order they are looked up: the caller's explicit key first.
    var keys: [String] { headerKey.map { [$0, storedKey] } ?? [storedKey] }

    var keyed: KeyedOperation {
        KeyedOperation(operation: operation, keys: keys, requestHash: requestHash)
    }
}

extension WallClock {
    public static let system = WallClock { Int64((Date().timeIntervalSince1970 * 1000).rounded(.down)) }
}

