import CreditsCore

/// SQL for uploads that both stores run as is (placeholders differ: `?` or `$n`, filled in by each).
enum UploadQueries {
    static let columns = """
        upload_id, user_id, file_type, file_count, features, size_bytes, priority, status, credits_reserved,
        credits_charged, batch_id, failure_reason, attempts, created_at, updated_at, sponsored
        """

    /// The lifecycle moves the worker may make without touching balances.
    static func checkMark(_ status: UploadRecord.Status) {
        precondition(!status.isSettled, "confirmed and refunded are set by the ledger's capture and release")
    }

    static func record(
        uploadId: String, userId: String, fileType: String, fileCount: Int64, features: String, sizeBytes: Int64,
        priority: String, status: String, creditsReserved: Int64, creditsCharged: Int64, batchId: String?,
        failureReason: String?, attempts: Int64, createdAt: Int64, updatedAt: Int64, sponsored: Bool
    ) -> UploadRecord {
        var record = UploadRecord(
            uploadId: uploadId, userId: userId, fileType: fileType, fileCount: Int(fileCount),
            features: features.isEmpty ? [] : features.split(separator: ",").map(String.init), sizeBytes: sizeBytes,
            priority: UploadPriority(rawValue: priority) ?? .medium, status: UploadRecord.Status(rawValue: status) ?? .failed,
            creditsReserved: creditsReserved, creditsCharged: creditsCharged, batchId: batchId, failureReason: failureReason,
            attempts: Int(attempts), createdAtMs: createdAt, updatedAtMs: updatedAt)
        record.sponsored = sponsored
        return record
    }
}
