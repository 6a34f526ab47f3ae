/// Every limit the service enforces, named in one place. Tests pin how they relate.
public enum Limits {
    /// Largest request body the HTTP layer reads.
    public static let requestBodyBytesMax = 64 * 1024
    /// Transactions page size.
    public static let pageSizeMax = 100
    public static let pageSizeDefault = 20
    /// Files in one estimate or upload request.
    public static let fileCountMax = 1_000
    /// Bytes of one upload request (64 GiB).
    public static let uploadSizeBytesMax: Int64 = 64 << 30
    /// Credits moved by a single spend or adjustment.
    public static let creditsPerOperationMax: Int64 = 1_000_000_000
    /// Credits of one catalog item (package, upload type, feature). With `fileCountMax` this keeps
    /// every estimate far inside Int64.
    public static let catalogCreditsMax: Int64 = 10_000_000
    public static let catalogPriceCentsMax: Int64 = 100_000_000
    /// Identifier lengths (user ids, upload ids, payment ids, idempotency keys).
    public static let identifierLengthMax = 128
    public static let descriptionLengthMax = 500
    /// Refunds of one payment counted one by one (PayPal events that carry no refunded total);
    /// later ones count only through a total an event reports.
    public static let refundsPerPaymentMax = 100
    /// Operations the group-commit writer applies in one database transaction.
    public static let operationsPerCommitMax = 1_024
    /// Operations waiting for the writer before new ones are refused with 503.
    public static let writerQueueLengthMax = 16_384
}
