import CreditsCore
import CreditsStore
import Testing

/// The behaviour every store must have. Each test runs once per store in `StoreFactory.all`, so
/// the stores cannot drift apart.
@Suite struct StoreConformance {
    /// Runs `body` against a fresh store and closes it afterwards, even when `body` throws.
    func withStore(_ factory: StoreFactory, _ body: (FreshStore) async throws -> Void) async throws {
        try await withStore(factory, sponsorship: SponsorshipRules(), body)
    }

    @Test(arguments: StoreFactory.all)
    func unknownUserHasZeros(factory: StoreFactory) async throws {
        try await withStore(factory) { (f: FreshStore) async throws in
            #expect(try await f.store.balance(userId: "nobody") == UserCredits(userId: "nobody"))
            #expect(try await f.store.hasCredits(userId: "nobody", credits: 1) == false)
        }
    }

    /// SEED.md: "Result: 550 credits (500 + 50 bonus) for $20".
    @Test(arguments: StoreFactory.all)
    func creatorPurchaseGrants550For2000Cents(factory: StoreFactory) async throws {
        try await withStore(factory) { (f: FreshStore) async throws in
            let result = try await f.store.execute(purchase("user_123", "creator", "pi_1234567890"), idempotencyKey: nil)
            guard case .purchased(let r) = result.outcome else { Issue.record("not purchased: \(result)"); return }
            #expect(!result.replayed)
            #expect((r.credits, r.baseCredits, r.bonusCredits, r.priceCents, r.balance) == (550, 500, 50, 2000, 550))
            #expect(r.status == "completed")
            let b = try await f.store.balance(userId: "user_123")
            #expect(b.expiringSoon == 0 && b.nextExpiryAtMs != nil)  // the 50 bonus credits are a promotional lot, a year out
            #expect(b == { var c = UserCredits(userId: "user_123", balance: 550, totalPurchased: 550); c.nextExpiryAtMs = b.nextExpiryAtMs; return c }())
            let page = try await f.store.transactions(userId: "user_123", limit: 10, cursor: nil)
            #expect(page.data.map(\.credits) == [50, 500])
            #expect(page.data.map(\.type) == ["purchase_bonus", "purchase"])
            #expect(page.data.map(\.balanceAfter) == [550, 500])
            #expect(try await f.store.reconcile().ok)
        }
    }

    @Test(arguments: StoreFactory.all)
    func replayedPurchaseReturnsTheOriginalAndChangesNothing(factory: StoreFactory) async throws {
        try await withStore(factory) { (f: FreshStore) async throws in
            let first = try await f.store.execute(purchase("u1", "pro", "pi_9"), idempotencyKey: nil)
            let again = try await f.store.execute(purchase("u1", "pro", "pi_9"), idempotencyKey: nil)
            #expect(again.replayed)
            #expect(again.outcome == first.outcome)
            #expect(try await f.store.balance(userId: "u1").balance == 2300)
            // The same payment id through the other provider is another payment.
            let paypal = try await f.store.execute(purchase("u1", "starter", "pi_9", .paypal), idempotencyKey: nil)
            #expect(!paypal.replayed)
            #expect(try await f.store.balance(userId: "u1").balance == 2400)
        }
    }

    @Test(arguments: StoreFactory.all)
    func sameNaturalKeyWithAnotherRequestIsAConflictAndChangesNothing(factory: StoreFactory) async throws {
        try await withStore(factory) { (f: FreshStore) async throws in
            _ = try await f.store.execute(purchase("u1", "creator", "pi_1"), idempotencyKey: nil)
            _ = try await f.store.execute(spend("u1", 15, "up_1"), idempotencyKey: nil)
            await #expect(throws: CreditsError.self) {
                try await f.store.execute(purchase("u1", "pro", "pi_1"), idempotencyKey: nil)
            }
            do {
                _ = try await f.store.execute(spend("u1", 16, "up_1"), idempotencyKey: nil)
                Issue.record("a different spend under the same fileUploadId was accepted")
            } catch let error as CreditsError {
                #expect(error.code == .idempotencyConflict)
            }
            #expect(try await f.store.balance(userId: "u1").balance == 535)
            #expect(try await f.store.reconcile().ok)
        }
    }

    @Test(arguments: StoreFactory.all)
    func idempotencyKeyReplaysAndConflicts(factory: StoreFactory) async throws {
        try await withStore(factory) { (f: FreshStore) async throws in
            _ = try await f.store.execute(purchase("u1", "creator", "pi_1"), idempotencyKey: nil)
            let first = try await f.store.execute(spend("u1", 15, "up_1"), idempotencyKey: "key-1")
            let replay = try await f.store.execute(spend("u1", 15, "up_1"), idempotencyKey: "key-1")
            #expect(replay.replayed && replay.outcome == first.outcome)
            // The key names the first request: another request under it is refused, whatever its own keys.
            do {
                _ = try await f.store.execute(spend("u1", 15, "up_2"), idempotencyKey: "key-1")
                Issue.record("key reuse with another body was accepted")
            } catch let error as CreditsError {
                #expect(error.code == .idempotencyConflict)
            }
            // A new header key on a known natural key replays the natural key's outcome.
            let viaNatural = try await f.store.execute(spend("u1", 15, "up_1"), idempotencyKey: "key-2")
            #expect(viaNatural.replayed && viaNatural.outcome == first.outcome)
            #expect(try await f.store.balance(userId: "u1").balance == 535)
        }
    }

    /// SEED.md's error: a spend of 15 with 8 available.
    @Test(arguments: StoreFactory.all)
    func insufficientCreditsIsA402WithTheSeedsFieldsAndIsRemembered(factory: StoreFactory) async throws {
        try await withStore(factory) { (f: FreshStore) async throws in
            _ = try await f.store.execute(adjust("u1", 8, "grant-8"), idempotencyKey: nil)
            let result = try await f.store.execute(spend("u1", 15, "up_1"), idempotencyKey: "k")
            let e = try #require(result.outcome.rejection)
            #expect(e.code == .insufficientCredits)
            #expect((e.required, e.available, e.suggestedPackage) == (15, 8, "starter"))
            // Topping up does not flip the remembered outcome of the same request.
            _ = try await f.store.execute(purchase("u1", "starter", "pi_1"), idempotencyKey: nil)
            let retry = try await f.store.execute(spend("u1", 15, "up_1"), idempotencyKey: "k")
            #expect(retry.replayed && retry.outcome == result.outcome)
            let retryNatural = try await f.store.execute(spend("u1", 15, "up_1"), idempotencyKey: nil)
            #expect(retryNatural.replayed && retryNatural.outcome == result.outcome)
            #expect(try await f.store.balance(userId: "u1").balance == 108)
            // A new upload id is a new request.
            let fresh = try await f.store.execute(spend("u1", 15, "up_2"), idempotencyKey: nil)
            #expect(fresh.outcome.balance == 93)
        }
    }

    @Test(arguments: StoreFactory.all)
    func invalidInputIsRefusedAndChangesNothing(factory: StoreFactory) async throws {
        try await withStore(factory) { (f: FreshStore) async throws in
            let bad: [LedgerOperation] = [
                spend("u1", 0, "a"), spend("u1", -15, "b"), spend("", 1, "c"), spend("u1", 1, "has space"),
                purchase("u1", "platinum", "p1"), adjust("u1", 0, "z"),
            ]
            for op in bad {
                await #expect(throws: CreditsError.self) { try await f.store.execute(op, idempotencyKey: nil) }
            }
            await #expect(throws: CreditsError.self) {
                try await f.store.execute(spend("u1", 1, "ok"), idempotencyKey: "bad key with spaces")
            }
            #expect(try await f.store.balance(userId: "u1") == UserCredits(userId: "u1"))
            #expect(try await f.store.reconcile().journalRows == 0)
        }
    }

    /// The issue's concurrency case: exactly 20 of 100 concurrent spends of 15 fit in 300.
    @Test(arguments: StoreFactory.all)
    func hundredConcurrentSpendsOf15Against300(factory: StoreFactory) async throws {
        try await withStore(factory) { (f: FreshStore) async throws in
            _ = try await f.store.execute(adjust("u1", 300, "grant-300"), idempotencyKey: nil)
            let store = f.store
            let outcomes = try await withThrowingTaskGroup(of: LedgerOutcome.self) { group in
                for i in 0..<100 {
                    group.addTask { try await store.execute(spend("u1", 15, "up_\(i)"), idempotencyKey: nil).outcome }
                }
                return try await group.reduce(into: []) { $0.append($1) }
            }
            #expect(outcomes.filter { $0.rejection == nil }.count == 20)
            #expect(outcomes.compactMap(\.rejection).allSatisfy { $0.code == .insufficientCredits })
            let b = try await f.store.balance(userId: "u1")
            #expect(b.balance == 0)
            #expect(b.totalSpent == 300)
            #expect(try await f.store.reconcile().ok)
        }
    }

    @Test(arguments: StoreFactory.all)
    func concurrentDuplicatesApplyOnce(factory: StoreFactory) async throws {
        try await withStore(factory) { (f: FreshStore) async throws in
            _ = try await f.store.execute(adjust("u1", 100, "grant"), idempotencyKey: nil)
            let store = f.store
            let results = try await withThrowingTaskGroup(of: OperationResult.self) { group in
                for _ in 0..<50 {
                    group.addTask { try await store.execute(spend("u1", 15, "same-upload"), idempotencyKey: "same-key") }
                }
                return try await group.reduce(into: []) { $0.append($1) }
            }
            #expect(results.filter { !$0.replayed }.count == 1)
            #expect(Set(results.map { $0.outcome.balance }).count == 1)
            #expect(try await f.store.balance(userId: "u1").balance == 85)
            #expect(try await f.store.reconcile().ok)
        }
    }

    /// Group commit: operations that share a transaction keep their own outcomes.
    @Test(arguments: StoreFactory.all)
    func aFailingOperationDoesNotSpoilTheOthersInItsBatch(factory: StoreFactory) async throws {
        try await withStore(factory) { (f: FreshStore) async throws in
            _ = try await f.store.execute(adjust("rich", 1_000, "g1"), idempotencyKey: nil)
            _ = try await f.store.execute(purchase("taken", "starter", "dup"), idempotencyKey: nil)
            let store = f.store
            let ops: [(LedgerOperation, String?)] = (0..<40).map { i in
                switch i % 4 {
                case 0: (spend("poor", 10, "p_\(i)"), nil)  // insufficient
                case 1: (spend("rich", 10, "r_\(i)"), nil)  // fine
                case 2: (purchase("taken", "pro", "dup"), nil)  // conflict
                default: (purchase("buyer_\(i)", "starter", "pay_\(i)"), nil)  // fine
                }
            }
            let results = await withTaskGroup(of: (Int, Result<OperationResult, any Error>).self) { group in
                for (i, (op, key)) in ops.enumerated() {
                    group.addTask {
                        do { return (i, .success(try await store.execute(op, idempotencyKey: key))) } catch { return (i, .failure(error)) }
                    }
                }
                return await group.reduce(into: [:]) { $0[$1.0] = $1.1 }
            }
            for (i, result) in results {
                switch (i % 4, result) {
                case (0, .success(let r)): #expect(r.outcome.rejection?.code == .insufficientCredits)
                case (1, .success(let r)): #expect(r.outcome.rejection == nil)
                case (2, .failure(let e)): #expect((e as? CreditsError)?.code == .idempotencyConflict)
                case (3, .success(let r)): #expect(r.outcome.balance == 100)
                default: Issue.record("operation \(i) ended as \(result)")
                }
            }
            #expect(try await f.store.balance(userId: "rich").balance == 900)
            #expect(try await f.store.reconcile().ok)
        }
    }

    @Test(arguments: StoreFactory.all)
    func negativeAdjustmentCannotGoBelowZero(factory: StoreFactory) async throws {
        try await withStore(factory) { (f: FreshStore) async throws in
            _ = try await f.store.execute(adjust("u1", 40, "a1"), idempotencyKey: nil)
            let r = try await f.store.execute(adjust("u1", -50, "a2"), idempotencyKey: nil)
            #expect(r.outcome.rejection?.code == .insufficientCredits)
            let ok = try await f.store.execute(adjust("u1", -40, "a3"), idempotencyKey: nil)
            #expect(ok.outcome.balance == 0)
            let b = try await f.store.balance(userId: "u1")
            #expect(b.balance == 0 && b.totalEarned == 40)
            #expect(try await f.store.reconcile().ok)
        }
    }

    @Test(arguments: StoreFactory.all)
    func transactionsPageNewestFirstWithACursor(factory: StoreFactory) async throws {
        try await withStore(factory) { (f: FreshStore) async throws in
            _ = try await f.store.execute(adjust("u1", 1_000, "g"), idempotencyKey: nil)
            for i in 1...25 { _ = try await f.store.execute(spend("u1", Int64(i), "up_\(i)"), idempotencyKey: nil) }
            _ = try await f.store.execute(adjust("other", 5, "g2"), idempotencyKey: nil)
            var seen: [JournalEntry] = []
            var cursor: String?
            var pages = 0
            repeat {
                let page = try await f.store.transactions(userId: "u1", limit: 10, cursor: cursor)
                seen += page.data
                cursor = page.nextCursor
                pages += 1
            } while cursor != nil
            #expect(pages == 3)
            #expect(seen.count == 26)
            #expect(seen.first?.credits == -25)
            #expect(seen.last?.credits == 1_000)
            #expect(seen.map(\.credits).dropLast() == (1...25).reversed().map { -Int64($0) })
            // Balance after each row, newest first, walks back to the grant.
            #expect(seen.first?.balanceAfter == Int64(1_000 - (1...25).reduce(0, +)))
            #expect(seen.allSatisfy { $0.reference.hasPrefix("spend:") || $0.reference == "adjust:g" })
            for bad in [0, Limits.pageSizeMax + 1] {
                await #expect(throws: CreditsError.self) { try await f.store.transactions(userId: "u1", limit: bad, cursor: nil) }
            }
            await #expect(throws: CreditsError.self) { try await f.store.transactions(userId: "u1", limit: 10, cursor: "bogus") }
            #expect(try await f.store.transactions(userId: "u1", limit: Limits.pageSizeMax, cursor: nil).data.count == 26)
        }
    }

    @Test(arguments: StoreFactory.all)
    func reconcileNamesAnAccountWhoseBalanceWasEditedByHand(factory: StoreFactory) async throws {
        try await withStore(factory) { (f: FreshStore) async throws in
            _ = try await f.store.execute(purchase("alice", "creator", "pi_a"), idempotencyKey: nil)
            _ = try await f.store.execute(purchase("bob", "starter", "pi_b"), idempotencyKey: nil)
            #expect(try await f.store.reconcile().ok)
            try await f.tamper("UPDATE user_credits SET balance = balance + 1000 WHERE user_id = 'bob'")
            let report = try await f.store.reconcile()
            #expect(!report.ok)
            #expect(report.problems.first?.contains("user:bob") == true)
            #expect(!report.problems.contains { $0.contains("user:alice") })
        }
    }

    @Test(arguments: StoreFactory.all)
    func reconcileNoticesAJournalRowEditedByHand(factory: StoreFactory) async throws {
        try await withStore(factory) { (f: FreshStore) async throws in
            _ = try await f.store.execute(purchase("alice", "creator", "pi_a"), idempotencyKey: nil)
            _ = try await f.store.execute(spend("alice", 15, "up"), idempotencyKey: nil)
            try await f.tamper("UPDATE credit_transactions SET amount = 1 WHERE kind = 'spend'")
            let report = try await f.store.reconcile()
            #expect(!report.ok)
            #expect(report.problems.contains { $0.contains("user:alice") })
        }
    }
}

extension StoreConformance {
    @Test(arguments: StoreFactory.all)
    func reconcileNoticesAnOperationPostedTwice(factory: StoreFactory) async throws {
        try await withStore(factory) { (f: FreshStore) async throws in
            _ = try await f.store.execute(adjust("dave", 100, "g"), idempotencyKey: nil)
            _ = try await f.store.execute(spend("dave", 15, "twice"), idempotencyKey: nil)
            // A second copy of the spend row, with balances made consistent, as a buggy writer might leave.
            try await f.tamper("""
                INSERT INTO credit_transactions (kind, user_id, debit_account, credit_account, amount,
                    debit_balance_after, credit_balance_after, reference, description, created_at)
                SELECT kind, user_id, debit_account, credit_account, amount, debit_balance_after - amount,
                    credit_balance_after + amount, reference, description, created_at
                FROM credit_transactions WHERE reference = 'spend:twice';
                UPDATE user_credits SET balance = balance - 15, total_spent = total_spent + 15 WHERE user_id = 'dave';
                UPDATE credit_lots SET remaining = remaining - 15 WHERE user_id = 'dave';
                UPDATE platform_accounts SET balance = balance + 15 WHERE name = 'upload_fees';
                """)
            let report = try await f.store.reconcile()
            #expect(report.problems == ["operation spend:twice: 2 journal rows of kind spend, expected one"])
        }
    }
}

/// Uploads: reserve → capture or release (DESIGN.md "Ledger").
extension StoreConformance {
    static func audio(_ id: String, user: String = "u1", files: Int = 3, features: [String] = ["premium_encryption", "quality_variants"]) -> LedgerOperation {
        .upload(UploadRequest(uploadId: id, userId: user, fileType: "audio", fileCount: files, features: features,
                              sizeBytes: 5_000_000, priority: .medium))
    }

    @Test(arguments: StoreFactory.all)
    func queueingHoldsTheEstimateAndCaptureCharges(factory: StoreFactory) async throws {
        try await withStore(factory) { (f: FreshStore) async throws in
            _ = try await f.store.execute(adjust("u1", 100, "g"), idempotencyKey: nil)
            let queued = try await f.store.execute(Self.audio("file_1"), idempotencyKey: nil)
            guard case .queued(let r) = queued.outcome else { Issue.record("\(queued)"); return }
            #expect(r.creditsReserved == 60 && r.balance == 40 && r.status == "queued")
            var b = try await f.store.balance(userId: "u1")
            #expect((b.balance, b.reserved, b.totalSpent) == (40, 60, 0))
            #expect(try await f.store.upload(uploadId: "file_1")?.status == .queued)
            #expect(try await f.store.uploads(status: .queued, limit: 10).map(\.uploadId) == ["file_1"])

            #expect(try await f.store.transitionUploads(["file_1"], from: [.queued], to: .batched, batchId: "batch_1", reason: nil) == ["file_1"])
            // A second worker claiming the same upload gets nothing.
            #expect(try await f.store.transitionUploads(["file_1"], from: [.queued], to: .batched, batchId: "batch_2", reason: nil).isEmpty)
            // A write about another batch's message leaves it alone; one about its own moves it.
            #expect(try await f.store.transitionUploads(["file_1"], from: [.batched], to: .submitted, batchId: nil, reason: nil,
                                                        inBatch: "batch_2").isEmpty)
            #expect(try await f.store.transitionUploads(["file_1"], from: [.batched], to: .submitted, batchId: nil, reason: nil,
                                                        inBatch: "batch_1") == ["file_1"])
            let captured = try await f.store.execute(.capture(SettleRequest(uploadId: "file_1", userId: "u1")), idempotencyKey: nil)
            guard case .settled(let s) = captured.outcome else { Issue.record("\(captured)"); return }
            #expect(s.credits == 60 && s.status == "confirmed")
            b = try await f.store.balance(userId: "u1")
            #expect((b.balance, b.reserved, b.totalSpent) == (40, 0, 60))
            let record = try #require(try await f.store.upload(uploadId: "file_1"))
            #expect(record.status == .confirmed && record.creditsCharged == 60 && record.batchId == "batch_1" && record.attempts == 1)
            // Settled for good: the worker cannot move it, and it cannot be released.
            #expect(try await f.store.transitionUploads(["file_1"], from: [.queued, .batched, .submitted, .failed], to: .failed,
                                                        batchId: nil, reason: "late").isEmpty)
            await #expect(throws: CreditsError.self) {
                try await f.store.execute(.release(SettleRequest(uploadId: "file_1", userId: "u1")), idempotencyKey: nil)
            }
            #expect(try await f.store.reconcile().ok)
        }
    }

    @Test(arguments: StoreFactory.all)
    func releaseRefundsTheHoldInFullAndOnlyOnce(factory: StoreFactory) async throws {
        try await withStore(factory) { (f: FreshStore) async throws in
            _ = try await f.store.execute(adjust("u1", 100, "g"), idempotencyKey: nil)
            _ = try await f.store.execute(Self.audio("file_2", files: 5, features: []), idempotencyKey: nil)  // 64 held
            #expect(try await f.store.balance(userId: "u1").balance == 36)
            let release = LedgerOperation.release(SettleRequest(uploadId: "file_2", userId: "u1", reason: "batch reverted 3 times"))
            let first = try await f.store.execute(release, idempotencyKey: nil)
            let again = try await f.store.execute(release, idempotencyKey: nil)
            #expect(!first.replayed && again.replayed && first.outcome == again.outcome)
            let b = try await f.store.balance(userId: "u1")
            #expect((b.balance, b.reserved, b.totalSpent) == (100, 0, 0))
            let record = try #require(try await f.store.upload(uploadId: "file_2"))
            #expect(record.status == .refunded && record.failureReason == "batch reverted 3 times")
            await #expect(throws: CreditsError.self) {
                try await f.store.execute(.capture(SettleRequest(uploadId: "file_2", userId: "u1")), idempotencyKey: nil)
            }
            #expect(try await f.store.reconcile().ok)
        }
    }

    /// A message that stored an upload after its refund is noted on the refunded row: the note
    /// first, then the reason it was refunded for (cut to the limit, the note kept whole), once.
    /// Nothing else moves: not its status, nor a balance; an upload in another status is left
    /// alone, and so is a reason that changed since it was read.
    @Test(arguments: StoreFactory.all)
    func aRefundedUploadStoredAfterItsRefundIsNotedOnce(factory: StoreFactory) async throws {
        try await withStore(factory) { (f: FreshStore) async throws in
            _ = try await f.store.execute(adjust("u1", 200, "g"), idempotencyKey: nil)
            _ = try await f.store.execute(Self.audio("file_r", files: 5, features: []), idempotencyKey: nil)
            _ = try await f.store.execute(Self.audio("file_long", files: 5, features: []), idempotencyKey: nil)
            _ = try await f.store.execute(Self.audio("file_q", files: 5, features: []), idempotencyKey: nil)
            _ = try await f.store.execute(.release(SettleRequest(uploadId: "file_r", userId: "u1", reason: "failed after 5 attempts")),
                                          idempotencyKey: nil)
            let long = String(repeating: "x", count: Limits.descriptionLengthMax)
            _ = try await f.store.execute(.release(SettleRequest(uploadId: "file_long", userId: "u1", reason: long)), idempotencyKey: nil)
            let before = try await f.store.balance(userId: "u1")

            #expect(try await f.store.noteStoredAfterRefund(uploadId: "file_r", messageCid: "bafy1"))
            #expect(try await !f.store.noteStoredAfterRefund(uploadId: "file_r", messageCid: "bafy1"))
            #expect(try await !f.store.noteStoredAfterRefund(uploadId: "file_r", messageCid: "bafy2"))
            let r = try #require(try await f.store.upload(uploadId: "file_r"))
            #expect(r.status == .refunded && r.creditsCharged == 0)
            #expect(r.failureReason == "stored on chain after its refund by message bafy1, not charged; refunded: failed after 5 attempts")

            #expect(try await f.store.noteStoredAfterRefund(uploadId: "file_long", messageCid: "bafy3"))
            let l = try #require(try await f.store.upload(uploadId: "file_long")?.failureReason)
            #expect(l.count == Limits.descriptionLengthMax && l.hasPrefix("stored on chain after its refund by message bafy3, not charged; refunded: xxx"))

            // Queued (not refunded), unknown, or its reason changed since it was read: nothing.
            #expect(try await !f.store.noteStoredAfterRefund(uploadId: "file_q", messageCid: "bafy4"))
            #expect(try await f.store.upload(uploadId: "file_q")?.failureReason == nil)
            #expect(try await !f.store.noteStoredAfterRefund(uploadId: "nope", messageCid: "bafy5"))
            #expect(try await !f.store.setRefundedUploadReason(uploadId: "file_r", expected: "failed after 5 attempts", reason: "other"))
            #expect(try await !f.store.setRefundedUploadReason(uploadId: "file_q", expected: nil, reason: "other"))
            #expect(try await f.store.upload(uploadId: "file_q")?.status == .queued)

            let after = try await f.store.balance(userId: "u1")
            #expect((after.balance, after.reserved, after.totalSpent) == (before.balance, before.reserved, before.totalSpent))
            #expect(try await f.store.reconcile().ok)
        }
    }

    /// `failureReason` says why an upload failed while it is failed or refunded. A move to failed
    /// sets it (keeping the last one when none is given); any other move clears it, and so does
    /// the capture: a confirmed upload does not carry a failure it got over (each message's own
    /// failure stays on its row). A refund keeps the failure it settles when it names none.
    @Test(arguments: StoreFactory.all)
    func anUploadsFailureReasonGoesWhenItMovesOn(factory: StoreFactory) async throws {
        try await withStore(factory) { (f: FreshStore) async throws in
            _ = try await f.store.execute(adjust("u1", 100, "g"), idempotencyKey: nil)
            for id in ["file_a", "file_b"] {
                _ = try await f.store.execute(Self.audio(id, files: 1, features: []), idempotencyKey: nil)
            }
            func reason(_ id: String) async throws -> String? { try await f.store.upload(uploadId: id)?.failureReason }
            func move(_ id: String, _ from: UploadRecord.Status, _ to: UploadRecord.Status, _ why: String?) async throws {
                #expect(try await f.store.transitionUploads([id], from: [from], to: to, batchId: "batch_a", reason: why) == [id])
            }
            try await move("file_a", .queued, .batched, nil)
            try await move("file_a", .batched, .failed, "push failed: refused")
            #expect(try await reason("file_a") == "push failed: refused")
            try await move("file_a", .failed, .failed, nil)
            #expect(try await reason("file_a") == "push failed: refused")
            try await move("file_a", .failed, .batched, nil)
            #expect(try await reason("file_a") == nil)
            try await move("file_a", .batched, .submitted, nil)
            try await move("file_a", .submitted, .failed, "message bafy1 never landed")
            try await move("file_a", .failed, .queued, nil)
            #expect(try await reason("file_a") == nil)
            try await move("file_a", .queued, .submitted, nil)
            try await move("file_a", .submitted, .failed, "message bafy2 never landed")
            _ = try await f.store.execute(.capture(SettleRequest(uploadId: "file_a", userId: "u1")), idempotencyKey: nil)
            let a = try #require(try await f.store.upload(uploadId: "file_a"))
            #expect(a.status == .confirmed && a.failureReason == nil)

            try await move("file_b", .queued, .failed, "push failed: refused")
            _ = try await f.store.execute(.release(SettleRequest(uploadId: "file_b", userId: "u1", reason: "")), idempotencyKey: nil)
            let b = try #require(try await f.store.upload(uploadId: "file_b"))
            #expect(b.status == .refunded && b.failureReason == "push failed: refused")
            #expect(try await f.store.reconcile().ok)
        }
    }

    /// Taking over a peer's upload, the move names the time it must be untouched since: an
    /// upload updated after that (its owner alive after all) stays where it is.
    @Test(arguments: StoreFactory.all)
    func aMoveForUploadsUntouchedSinceLeavesOneTouchedLater(factory: StoreFactory) async throws {
        try await withStore(factory) { (f: FreshStore) async throws in
            _ = try await f.store.execute(adjust("u1", 100, "g"), idempotencyKey: nil)
            _ = try await f.store.execute(Self.audio("file_8"), idempotencyKey: nil)
            #expect(try await f.store.transitionUploads(["file_8"], from: [.queued], to: .submitted, batchId: "batch_a", reason: nil) == ["file_8"])
            let touched = try #require(try await f.store.upload(uploadId: "file_8")).updatedAtMs
            #expect(try await f.store.transitionUploads(["file_8"], from: [.submitted], to: .queued, batchId: nil, reason: nil,
                                                        inBatch: nil, untouchedSinceMs: touched - 1).isEmpty)
            let kept = try #require(try await f.store.upload(uploadId: "file_8"))
            #expect(kept.status == .submitted && kept.batchId == "batch_a" && kept.updatedAtMs == touched)
            #expect(try await f.store.transitionUploads(["file_8"], from: [.submitted], to: .queued, batchId: nil, reason: nil,
                                                        inBatch: nil, untouchedSinceMs: touched) == ["file_8"])
            #expect(try await f.store.upload(uploadId: "file_8")?.status == .queued)
        }
    }

    /// The worker's release names the batch whose failure it settles; the ledger refuses it,
    /// writing nothing, unless the upload is failed in that batch as the transaction reads it.
    @Test(arguments: StoreFactory.all)
    func aReleaseForABatchSettlesOnlyAnUploadFailedInIt(factory: StoreFactory) async throws {
        try await withStore(factory) { (f: FreshStore) async throws in
            _ = try await f.store.execute(adjust("u1", 100, "g"), idempotencyKey: nil)
            _ = try await f.store.execute(Self.audio("file_9"), idempotencyKey: nil)  // 60 held
            func release(_ batch: String) async throws -> OperationResult {
                try await f.store.execute(.release(SettleRequest(uploadId: "file_9", userId: "u1", reason: "failed", failedInBatch: batch)),
                                          idempotencyKey: nil)
            }
            func refused(_ batch: String, _ status: UploadRecord.Status, inBatch: String?) async throws {
                await #expect(throws: CreditsError.self) { try await release(batch) }
                let b = try await f.store.balance(userId: "u1")
                #expect((b.balance, b.reserved, b.totalSpent) == (40, 60, 0))
                let u = try #require(try await f.store.upload(uploadId: "file_9"))
                #expect(u.status == status && u.batchId == inBatch && u.failureReason == nil, "\(u)")
            }
            let rows = try await f.store.transactions(userId: "u1", limit: 10, cursor: nil).data.count
            try await refused("batch_a", .queued, inBatch: nil)
            #expect(try await f.store.transitionUploads(["file_9"], from: [.queued], to: .batched, batchId: "batch_a", reason: nil) == ["file_9"])
            try await refused("batch_a", .batched, inBatch: "batch_a")
            #expect(try await f.store.transitionUploads(["file_9"], from: [.batched], to: .failed, batchId: nil, reason: nil,
                                                        inBatch: "batch_a") == ["file_9"])
            // Taken over by another instance and sent in its batch: a's release is refused.
            #expect(try await f.store.transitionUploads(["file_9"], from: [.failed], to: .batched, batchId: "batch_b", reason: nil) == ["file_9"])
            try await refused("batch_a", .batched, inBatch: "batch_b")
            // Failed in b's batch: still not a's to release, and b's release goes through.
            #expect(try await f.store.transitionUploads(["file_9"], from: [.batched], to: .failed, batchId: nil, reason: nil,
                                                        inBatch: "batch_b") == ["file_9"])
            await #expect(throws: CreditsError.self) { try await release("batch_a") }
            #expect(try await f.store.transactions(userId: "u1", limit: 10, cursor: nil).data.count == rows)
            let done = try await release("batch_b")
            guard case .settled(let settled) = done.outcome else { Issue.record("\(done)"); return }
            #expect(settled.credits == 60 && settled.status == "refunded")
            let b = try await f.store.balance(userId: "u1")
            #expect((b.balance, b.reserved, b.totalSpent) == (100, 0, 0))
            #expect(try await f.store.upload(uploadId: "file_9")?.status == .refunded)
            #expect(try await f.store.reconcile().ok)
        }
    }

    @Test(arguments: StoreFactory.all)
    func uploadsAreIdempotentAndRefusedWhenCreditsAreShort(factory: StoreFactory) async throws {
        try await withStore(factory) { (f: FreshStore) async throws in
            _ = try await f.store.execute(adjust("u1", 50, "g"), idempotencyKey: nil)
            let short = try await f.store.execute(Self.audio("file_3"), idempotencyKey: nil)  // 60 > 50
            #expect(short.outcome.rejection?.code == .insufficientCredits)
            #expect(short.outcome.rejection?.required == 60 && short.outcome.rejection?.available == 50)
            #expect(try await f.store.upload(uploadId: "file_3") == nil)
            let one = try await f.store.execute(Self.audio("file_4", files: 1, features: []), idempotencyKey: nil)
            let replay = try await f.store.execute(Self.audio("file_4", files: 1, features: []), idempotencyKey: nil)
            #expect(replay.replayed && replay.outcome == one.outcome)
            do {
                _ = try await f.store.execute(Self.audio("file_4", files: 2, features: []), idempotencyKey: nil)
                Issue.record("another upload under the same id was accepted")
            } catch let e as CreditsError {
                #expect(e.code == .idempotencyConflict)
            }
            let missing = LedgerOperation.capture(SettleRequest(uploadId: "nope", userId: "u1"))
            await #expect(throws: CreditsError.self) { try await f.store.execute(missing, idempotencyKey: nil) }
            let b = try await f.store.balance(userId: "u1")
            #expect((b.balance, b.reserved) == (35, 15))
            #expect(try await f.store.reconcile().ok)
        }
    }

    @Test(arguments: StoreFactory.all)
    func reconcileNoticesAHandEditedHold(factory: StoreFactory) async throws {
        try await withStore(factory) { (f: FreshStore) async throws in
            _ = try await f.store.execute(adjust("erin", 100, "g"), idempotencyKey: nil)
            _ = try await f.store.execute(Self.audio("file_5", user: "erin"), idempotencyKey: nil)
            #expect(try await f.store.reconcile().ok)
            try await f.tamper("UPDATE user_credits SET reserved = 0 WHERE user_id = 'erin'")
            let report = try await f.store.reconcile()
            #expect(report.problems.first?.contains("hold:erin") == true, "\(report.problems)")
        }
    }
}

extension StoreConformance {
    @Test(arguments: StoreFactory.all)
    func gasTransactionsRoundTripWithAmountsPast64Bits(factory: StoreFactory) async throws {
        try await withStore(factory) { (f: FreshStore) async throws in
            let huge = Int128(Int64.max) * 1_000
            var tx = GasTransaction(
                id: "gas_1", batchId: "batch_1", messageCid: "bafy1", uploadIds: ["a", "b"], gasLimit: 500_000_000,
                gasUsed: 0, baseFee: 100, premium: 100_000, feeCap: huge, totalCost: 0, individualCost: huge + 7,
                immediateCost: 12, status: .pending, attempt: 1, failureReason: nil, createdAtMs: 1_000, updatedAtMs: 1_000)
            try await f.store.saveGasTransaction(tx)
            tx.status = .confirmed
            tx.totalCost = huge - 1
            tx.gasUsed = 400_000_000
            tx.updatedAtMs = 2_000
            try await f.store.saveGasTransaction(tx)
            let loaded = try await f.store.gasTransactions(sinceMs: 0, limit: 10)
            #expect(loaded == [tx])
            #expect(try await f.store.gasTransactions(sinceMs: 1_001, limit: 10).isEmpty)
        }
    }
}

extension StoreConformance {
    /// The platform report's counts agree with the journal, and the window excludes older rows.
    @Test(arguments: StoreFactory.all)
    func platformTotalsAgreeWithTheJournal(factory: StoreFactory) async throws {
        try await withStore(factory) { (f: FreshStore) async throws in
            _ = try await f.store.execute(purchase("ann", "creator", "pi_ann"), idempotencyKey: nil)  // $20, 550
            _ = try await f.store.execute(purchase("bob", "pro", "pi_bob"), idempotencyKey: nil)      // $60, 2300
            _ = try await f.store.execute(purchase("bob", "starter", "pi_bob2"), idempotencyKey: nil) // $5, 100
            _ = try await f.store.execute(spend("ann", 15, "s1"), idempotencyKey: nil)
            _ = try await f.store.execute(spend("cat", 15, "s2"), idempotencyKey: nil)  // refused: no credits
            _ = try await f.store.execute(adjust("dan", 40, "g"), idempotencyKey: nil)
            _ = try await f.store.execute(Self.audio("up1", user: "bob"), idempotencyKey: nil)  // 60 held
            _ = try await f.store.execute(.capture(SettleRequest(uploadId: "up1", userId: "bob")), idempotencyKey: nil)
            _ = try await f.store.execute(Self.audio("up2", user: "bob", files: 1, features: []), idempotencyKey: nil)  // 15 held
            _ = try await f.store.execute(Self.audio("up3", user: "ann", files: 1, features: []), idempotencyKey: nil)  // 15 held...
            _ = try await f.store.execute(.release(SettleRequest(uploadId: "up3", userId: "ann", reason: "failed")), idempotencyKey: nil)  // ...refunded
            let (t, prices) = try await f.store.platformTotals(sinceMs: 0)
            #expect(t.purchases == 3 && t.revenueCents == 8_500 && t.creditsSold == 2_950)
            #expect(prices.sorted() == [500, 2000, 6000])
            #expect(t.creditsSpent == 75)  // a refunded upload is not spent
            #expect(t.creditsOutstanding == 2_950 + 40 - 75)  // held credits are still owed, refunded ones are back
            #expect(t.activeUsers == 3)  // ann, bob, dan: a refused spend writes no journal row
            #expect(t.payingUsers == 2)
            #expect(t.confirmedUploads == 1 && t.uploadCreditsCharged == 60)
            let later = try await f.store.platformTotals(sinceMs: Int64.max / 2).0
            #expect(later.purchases == 0 && later.creditsSpent == 0 && later.activeUsers == 0)
            #expect(later.creditsOutstanding == t.creditsOutstanding)

            // Payments move the report: a $15.00 refund of bob's pro ($60), a dispute opened on his
            // starter ($5), and eve's starter whose payment failed.
            func event(_ id: String, _ payment: String, _ kind: PaymentEventKind, refunded: Int64 = 0) -> LedgerOperation {
                .paymentEvent(PaymentEventRequest(paymentMethod: .stripe, eventId: id, paymentId: payment, kind: kind, refundedCents: refunded))
            }
            _ = try await f.store.execute(event("evt_1", "pi_bob", .refunded, refunded: 1_500), idempotencyKey: nil)  // 575 back
            _ = try await f.store.execute(event("evt_2", "pi_bob2", .disputeOpened), idempotencyKey: nil)  // 100 back
            _ = try await f.store.execute(purchase("eve", "starter", "pi_eve"), idempotencyKey: nil)
            _ = try await f.store.execute(event("evt_3", "pi_eve", .failed), idempotencyKey: nil)
            let (t2, prices2) = try await f.store.platformTotals(sinceMs: 0)
            #expect(t2.purchases == 3 && t2.revenueCents == 8_500 && t2.creditsSold == 2_950)  // eve never paid
            #expect(prices2.sorted() == [500, 2000, 6000])
            #expect(t2.refundsCents == 1_500 + 500)
            #expect(t2.creditsOutstanding == t.creditsOutstanding - 575 - 100)  // floor(2300 × 1500 / 6000) = 575
            #expect(t2.activeUsers == 4 && t2.payingUsers == 2)  // eve has journal rows but paid nothing
            #expect(try await f.store.reconcile().ok)
        }
    }
}

/// Milestones (SEED.md: plays_1k 25, followers_5k 50, first_creator_coin 100), once per user.
extension StoreConformance {
    @Test(arguments: StoreFactory.all)
    func aMilestoneSentTwiceGrantsOnce(factory: StoreFactory) async throws {
        try await withStore(factory) { (f: FreshStore) async throws in
            let op = LedgerOperation.milestone(MilestoneRequest(userId: "kim", milestone: "followers_5k"))
            let first = try await f.store.execute(op, idempotencyKey: nil)
            let second = try await f.store.execute(op, idempotencyKey: nil)
            guard case .milestoneGranted(let r) = first.outcome else { Issue.record("\(first)"); return }
            #expect(r.credits == 50 && r.balance == 50 && !first.replayed)
            #expect(second.replayed && second.outcome == first.outcome)
            _ = try await f.store.execute(.milestone(MilestoneRequest(userId: "kim", milestone: "plays_1k")), idempotencyKey: nil)
            _ = try await f.store.execute(.milestone(MilestoneRequest(userId: "kim", milestone: "first_creator_coin")), idempotencyKey: nil)
            _ = try await f.store.execute(.milestone(MilestoneRequest(userId: "lee", milestone: "plays_1k")), idempotencyKey: nil)
            let b = try await f.store.balance(userId: "kim")
            #expect(b.balance == 175 && b.totalEarned == 175 && b.totalPurchased == 0)
            await #expect(throws: CreditsError.self) {
                try await f.store.execute(.milestone(MilestoneRequest(userId: "kim", milestone: "plays_1m")), idempotencyKey: nil)
            }
            let page = try await f.store.transactions(userId: "kim", limit: 10, cursor: nil)
            #expect(page.data.allSatisfy { $0.type == "milestone" && $0.counterparty == "platform:promotions" })
            #expect(try await f.store.reconcile().ok)
        }
    }
}

extension StoreConformance {
    @Test(arguments: StoreFactory.all)
    func usersRegisterAndUpdate(factory: StoreFactory) async throws {
        try await withStore(factory) { (f: FreshStore) async throws in
            #expect(try await f.store.userProfile(userId: "zoe") == nil)
            let created = try await f.store.upsertUser(userId: "zoe", walletAddress: .some("f1zoe"), signedUpAtMs: 1_000)
            #expect(created == UserProfile(userId: "zoe", walletAddress: "f1zoe", signedUpAtMs: 1_000))
            // Absent fields keep their values; null clears the wallet.
            let kept = try await f.store.upsertUser(userId: "zoe", walletAddress: nil, signedUpAtMs: nil)
            #expect(kept.walletAddress == "f1zoe" && kept.signedUpAtMs == 1_000)
            let cleared = try await f.store.upsertUser(userId: "zoe", walletAddress: .some(nil), signedUpAtMs: 2_000)
            #expect(cleared.walletAddress == nil && cleared.signedUpAtMs == 2_000)
            #expect(try await f.store.userProfile(userId: "zoe") == cleared)
        }
    }
}

/// Sponsored uploads (SEED.md: first 5 free for new creators; issue 6).
extension StoreConformance {
    func withStore(_ factory: StoreFactory, sponsorship: SponsorshipRules, _ body: (FreshStore) async throws -> Void) async throws {
        let fresh = try await factory.make(.default, sponsorship: sponsorship)
        do {
            try await body(fresh)
        } catch {
            try? await fresh.close()
            throw error
        }
        try await fresh.close()
    }

    @Test(arguments: StoreFactory.all)
    func aNewCreatorsFirstFiveUploadsAreFreeAndTheSixthIsCharged(factory: StoreFactory) async throws {
        try await withStore(factory) { (f: FreshStore) async throws in
            _ = try await f.store.upsertUser(userId: "neo", walletAddress: nil, signedUpAtMs: nil)
            _ = try await f.store.execute(adjust("neo", 100, "g"), idempotencyKey: nil)
            for i in 1...5 {
                let r = try await f.store.execute(Self.audio("free_\(i)", user: "neo", files: 1, features: []), idempotencyKey: nil)
                guard case .queued(let q) = r.outcome else { Issue.record("\(r)"); return }
                #expect(q.sponsored && q.creditsReserved == 15 && q.balance == 100)
            }
            var b = try await f.store.balance(userId: "neo")
            #expect(b.balance == 100 && b.reserved == 0)
            #expect(try await f.store.userProfile(userId: "neo")?.sponsoredUploadsUsed == 5)
            let sixth = try await f.store.execute(Self.audio("paid_6", user: "neo", files: 1, features: []), idempotencyKey: nil)
            guard case .queued(let q6) = sixth.outcome else { Issue.record("\(sixth)"); return }
            #expect(!q6.sponsored && q6.balance == 85)
            b = try await f.store.balance(userId: "neo")
            #expect(b.balance == 85 && b.reserved == 15)
            #expect(try await f.store.upload(uploadId: "free_1")?.sponsored == true)
            #expect(try await f.store.upload(uploadId: "paid_6")?.sponsored == false)

            // A sponsored upload confirmed: the platform pays; the creator's totals do not move.
            _ = try await f.store.execute(.capture(SettleRequest(uploadId: "free_1", userId: "neo")), idempotencyKey: nil)
            // A sponsored upload that fails gives its slot back, and the next upload is free again.
            _ = try await f.store.execute(.release(SettleRequest(uploadId: "free_2", userId: "neo", reason: "failed")), idempotencyKey: nil)
            #expect(try await f.store.userProfile(userId: "neo")?.sponsoredUploadsUsed == 4)
            let again = try await f.store.execute(Self.audio("free_again", user: "neo", files: 1, features: []), idempotencyKey: nil)
            guard case .queued(let qa) = again.outcome else { Issue.record("\(again)"); return }
            #expect(qa.sponsored)
            b = try await f.store.balance(userId: "neo")
            #expect(b.balance == 85 && b.totalSpent == 0 && b.reserved == 15)
            #expect(try await f.store.transactions(userId: "neo", limit: 100, cursor: nil).data.allSatisfy { !$0.type.hasPrefix("sponsored") })
            #expect(try await f.store.reconcile().ok)
        }
    }

    @Test(arguments: StoreFactory.all)
    func anEstablishedOrUnregisteredCreatorIsCharged(factory: StoreFactory) async throws {
        try await withStore(factory) { (f: FreshStore) async throws in
            _ = try await f.store.upsertUser(userId: "old", walletAddress: .some("f1old"), signedUpAtMs: 0)  // 1970, with a wallet
            for user in ["old", "anon"] {
                _ = try await f.store.execute(adjust(user, 100, "g-\(user)"), idempotencyKey: nil)
                let r = try await f.store.execute(Self.audio("u-\(user)", user: user, files: 1, features: []), idempotencyKey: nil)
                guard case .queued(let q) = r.outcome else { Issue.record("\(r)"); return }
                #expect(!q.sponsored && q.balance == 85)
            }
            #expect(try await f.store.reconcile().ok)
        }
    }

    @Test(arguments: StoreFactory.all)
    func theMonthlyBudgetCapsSponsorship(factory: StoreFactory) async throws {
        var rules = SponsorshipRules()
        rules.monthlyBudgetCredits = 20
        try await withStore(factory, sponsorship: rules) { (f: FreshStore) async throws in
            for user in ["a1", "a2"] {
                _ = try await f.store.upsertUser(userId: user, walletAddress: nil, signedUpAtMs: nil)
                _ = try await f.store.execute(adjust(user, 100, "g-\(user)"), idempotencyKey: nil)
            }
            let first = try await f.store.execute(Self.audio("b1", user: "a1", files: 1, features: []), idempotencyKey: nil)
            let second = try await f.store.execute(Self.audio("b2", user: "a2", files: 1, features: []), idempotencyKey: nil)
            guard case .queued(let q1) = first.outcome, case .queued(let q2) = second.outcome else { Issue.record("\(first) \(second)"); return }
            #expect(q1.sponsored && !q2.sponsored)  // 15 of 20 used; 15 more would pass the budget
            // Releasing the sponsored one gives the budget back.
            _ = try await f.store.execute(.release(SettleRequest(uploadId: "b1", userId: "a1", reason: "failed")), idempotencyKey: nil)
            let third = try await f.store.execute(Self.audio("b3", user: "a2", files: 1, features: []), idempotencyKey: nil)
            guard case .queued(let q3) = third.outcome else { Issue.record("\(third)"); return }
            #expect(q3.sponsored)
            #expect(try await f.store.reconcile().ok)
        }
    }
}

extension StoreConformance {
    @Test(arguments: StoreFactory.all)
    func anExplicitSponsoredUploadUsesASlotAndIsRefusedWhenNotEligible(factory: StoreFactory) async throws {
        try await withStore(factory) { (f: FreshStore) async throws in
            _ = try await f.store.upsertUser(userId: "sam", walletAddress: nil, signedUpAtMs: nil)
            let op = LedgerOperation.sponsor(SponsoredUploadRequest(
                userId: "sam", fileUploadId: "upload_123", credits: 15, reason: "new_creator", usdValueCents: 60, gasValueCents: 48))
            let first = try await f.store.execute(op, idempotencyKey: nil)
            guard case .sponsoredUpload(let r) = first.outcome else { Issue.record("\(first)"); return }
            #expect(r.credits == 15 && r.remainingSponsored == 4 && r.balance == 0)
            let again = try await f.store.execute(op, idempotencyKey: nil)
            #expect(again.replayed && again.outcome == first.outcome)
            #expect(try await f.store.userProfile(userId: "sam")?.sponsoredUploadsUsed == 1)
            let stranger = try await f.store.execute(.sponsor(SponsoredUploadRequest(
                userId: "nobody", fileUploadId: "upload_x", credits: 15, reason: "")), idempotencyKey: nil)
            #expect(stranger.outcome.rejection?.code == .notEligible)
            #expect(try await f.store.balance(userId: "sam") == UserCredits(userId: "sam"))
            #expect(try await f.store.reconcile().ok)
        }
    }
}

/// One id names one file upload, whichever way it is paid for (DESIGN.md's natural key
/// "fileUploadId/uploadId"): a spend, a queued upload and an explicit sponsorship under one id
/// share a key, so the second way is "same key, another request" and changes nothing.
extension StoreConformance {
    static func sponsored(_ id: String, user: String = "sam") -> LedgerOperation {
        .sponsor(SponsoredUploadRequest(userId: user, fileUploadId: id, credits: 15, reason: "new_creator"))
    }

    /// `op` is refused with 409 `IDEMPOTENCY_CONFLICT`; `what` names it when it is not.
    static func expectConflict(_ store: any CreditStore, _ op: LedgerOperation, key: String? = nil, _ what: String) async throws {
        do {
            let r = try await store.execute(op, idempotencyKey: key)
            Issue.record("\(what) was accepted: \(r)")
        } catch let e as CreditsError {
            #expect(e.code == .idempotencyConflict, "\(what): \(e)")
        }
    }

    @Test(arguments: StoreFactory.all)
    func aFileUploadIsPaidForOnceWhicheverWay(factory: StoreFactory) async throws {
        try await withStore(factory) { (f: FreshStore) async throws in
            _ = try await f.store.execute(adjust("u1", 100, "g"), idempotencyKey: nil)
            _ = try await f.store.upsertUser(userId: "sam", walletAddress: nil, signedUpAtMs: nil)
            _ = try await f.store.execute(adjust("sam", 100, "g-sam"), idempotencyKey: nil)
            let one = Self.audio("f1", files: 1, features: [])

            // Spent first: neither an upload nor a sponsorship under that id.
            let spent = try await f.store.execute(spend("u1", 15, "f1"), idempotencyKey: nil)
            try await Self.expectConflict(f.store, one, "an upload under a spent id")
            try await Self.expectConflict(f.store, Self.sponsored("f1"), "a sponsorship under a spent id")
            let again = try await f.store.execute(spend("u1", 15, "f1"), idempotencyKey: nil)
            #expect(again.replayed && again.outcome == spent.outcome)
            #expect(try await f.store.upload(uploadId: "f1") == nil)

            // Queued first: neither a spend nor a sponsorship, with or without an Idempotency-Key.
            let queued = try await f.store.execute(Self.audio("f2", files: 1, features: []), idempotencyKey: "k-upload")
            try await Self.expectConflict(f.store, spend("u1", 15, "f2"), "a spend under a queued upload's id")
            try await Self.expectConflict(f.store, spend("u1", 15, "f2"), key: "k-other", "a spend under a queued upload's id, with its own key")
            try await Self.expectConflict(f.store, Self.sponsored("f2"), "a sponsorship under a queued upload's id")
            let replay = try await f.store.execute(Self.audio("f2", files: 1, features: []), idempotencyKey: nil)
            #expect(replay.replayed && replay.outcome == queued.outcome)

            // Sponsored first: neither a spend nor an upload.
            _ = try await f.store.execute(Self.sponsored("f3"), idempotencyKey: nil)
            try await Self.expectConflict(f.store, spend("sam", 15, "f3"), "a spend under a sponsored id")
            try await Self.expectConflict(f.store, Self.audio("f3", user: "sam", files: 1, features: []), "an upload under a sponsored id")

            // A refusal is remembered under the shared key too: the id stays spent on it.
            let short = try await f.store.execute(spend("u1", 1_000, "f4"), idempotencyKey: nil)
            #expect(short.outcome.rejection?.code == .insufficientCredits)
            try await Self.expectConflict(f.store, Self.audio("f4", files: 1, features: []), "an upload under a refused spend's id")

            let u1 = try await f.store.balance(userId: "u1")
            #expect((u1.balance, u1.reserved, u1.totalSpent) == (70, 15, 15))
            let sam = try await f.store.balance(userId: "sam")
            #expect((sam.balance, sam.reserved, sam.totalSpent) == (100, 0, 0))
            #expect(try await f.store.userProfile(userId: "sam")?.sponsoredUploadsUsed == 1)
            #expect(try await f.store.reconcile().ok)
        }
    }

    /// Sent at once, a spend and an upload under one id: one of them is applied, once.
    @Test(arguments: StoreFactory.all)
    func aSpendAndAnUploadRacingUnderOneIdApplyOnce(factory: StoreFactory) async throws {
        try await withStore(factory) { (f: FreshStore) async throws in
            try await Self.raceSpendsAndUploads(spendsOn: f.store, uploadsOn: f.store)
        }
    }

    /// Ten ids, each sent 8 times as a spend to one store and 8 times as an upload to the other,
    /// all at once: for each id one request is applied, the others of its way replay it, and the
    /// other way is refused with 409; the user pays 15 per id.
    static func raceSpendsAndUploads(spendsOn: any CreditStore, uploadsOn: any CreditStore) async throws {
        _ = try await spendsOn.execute(adjust("u1", 1_000, "g"), idempotencyKey: nil)
        for round in 0..<10 {
            let id = "race_\(round)"
            let results = await withTaskGroup(of: (Bool, Result<OperationResult, any Error>).self) { group in
                for i in 0..<16 {
                    let isSpend = i % 2 == 0
                    let op = isSpend ? spend("u1", 15, id) : audio(id, files: 1, features: [])
                    let store = isSpend ? spendsOn : uploadsOn
                    group.addTask {
                        do { return (isSpend, .success(try await store.execute(op, idempotencyKey: nil))) }
                        catch { return (isSpend, .failure(error)) }
                    }
                }
                return await group.reduce(into: []) { $0.append($1) }
            }
            let applied = results.filter { if case .success(let r) = $0.1 { !r.replayed } else { false } }
            #expect(applied.count == 1, "\(id): \(applied.count) applied")
            let winner = applied.first?.0
            for (isSpend, result) in results {
                switch result {
                case .success: #expect(isSpend == winner, "\(id): both ways succeeded")
                case .failure(let e): #expect(isSpend != winner && (e as? CreditsError)?.code == .idempotencyConflict, "\(id): \(e)")
                }
            }
        }
        let b = try await spendsOn.balance(userId: "u1")
        #expect(b.balance == 1_000 - 10 * 15 && b.totalSpent + b.reserved == 10 * 15)  // 10 ids, 15 each, paid once
        #expect(try await spendsOn.reconcile().ok)
    }
}
