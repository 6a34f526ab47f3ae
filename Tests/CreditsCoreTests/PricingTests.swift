import Testing
@testable import CreditsCore

/// SEED.md's worked examples and DESIGN.md's rounding rule, literally.
@Suite struct PricingTests {
    let catalog = Catalog.default

    @Test func seedExampleThreeAudioWithTwoFeaturesCosts60() throws {
        let e = try Pricing.estimate(
            EstimateRequest(fileType: "audio", fileCount: 3, features: ["premium_encryption", "quality_variants"]),
            catalog: catalog)
        #expect(e.baseCredits == 45)
        #expect(e.featureCredits == 15)
        #expect(e.discountCredits == 0)
        #expect(e.credits == 60)
    }

    @Test func fiveAudioFilesGetFifteenPercentOffRoundedDownInCredits() throws {
        // 75 × 15 / 100 = 11.25 → 11 credits off → 64.
        let e = try Pricing.estimate(EstimateRequest(fileType: "audio", fileCount: 5), catalog: catalog)
        #expect(e.baseCredits == 75)
        #expect(e.discountCredits == 11)
        #expect(e.credits == 64)
    }

    @Test func fourFilesGetNoDiscount() throws {
        let e = try Pricing.estimate(EstimateRequest(fileType: "audio", fileCount: 4), catalog: catalog)
        #expect(e.discountCredits == 0)
        #expect(e.credits == 60)
    }

    @Test func discountAppliesToFeaturesToo() throws {
        // 5 videos (250) + premium_encryption (10) + custom_thumbnail (3) = 263; floor(263×0.15) = 39.
        let e = try Pricing.estimate(
            EstimateRequest(fileType: "video", fileCount: 5, features: ["premium_encryption", "custom_thumbnail"]),
            catalog: catalog)
        #expect(e.discountCredits == 39)
        #expect(e.credits == 224)
    }

    @Test(arguments: [("audio", 15), ("video", 50), ("album", 40)] as [(String, Int64)])
    func singleUploadPricesMatchTheSeed(type: String, credits: Int64) throws {
        #expect(try Pricing.estimate(EstimateRequest(fileType: type), catalog: catalog).credits == credits)
    }

    @Test func unknownTypeFeatureAndBadCountsNameTheirField() {
        func field(_ r: EstimateRequest) -> String? {
            do { _ = try Pricing.estimate(r, catalog: catalog); return nil } catch { return error.field }
        }
        #expect(field(EstimateRequest(fileType: "podcast")) == "fileType")
        #expect(field(EstimateRequest(fileType: "audio", fileCount: 0)) == "fileCount")
        #expect(field(EstimateRequest(fileType: "audio", fileCount: Limits.fileCountMax + 1)) == "fileCount")
        #expect(field(EstimateRequest(fileType: "audio", features: ["gold_plating"])) == "features[0]")
        #expect(field(EstimateRequest(fileType: "audio", features: ["quality_variants", "quality_variants"])) == "features[1]")
        #expect(field(EstimateRequest(fileType: "audio", fileCount: Limits.fileCountMax)) == nil)
    }
}

@Suite struct CatalogTests {
    @Test func seedPackages() {
        let c = Catalog.default
        #expect(c.package("starter") == CreditPackage(id: "starter", credits: 100, bonusCredits: 0, priceCents: 500))
        #expect(c.package("creator") == CreditPackage(id: "creator", credits: 500, bonusCredits: 50, priceCents: 2000))
        #expect(c.package("pro") == CreditPackage(id: "pro", credits: 2000, bonusCredits: 300, priceCents: 6000))
        #expect(c.milestones.map(\.credits) == [25, 50, 100])
    }

    @Test func suggestsTheCheapestPackageCoveringTheShortfallOrTheLargest() {
        let c = Catalog.default
        #expect(c.suggestedPackage(shortfall: 7).id == "starter")
        #expect(c.suggestedPackage(shortfall: 100).id == "starter")
        #expect(c.suggestedPackage(shortfall: 101).id == "creator")
        #expect(c.suggestedPackage(shortfall: 550).id == "creator")
        #expect(c.suggestedPackage(shortfall: 551).id == "pro")
        #expect(c.suggestedPackage(shortfall: 1_000_000).id == "pro")
    }

    @Test func insufficientCreditsErrorOfTheSeed() {
        let plan = LedgerRules.plan(.spend(SpendRequest(userId: "u", credits: 15, fileUploadId: "f")), catalog: .default)
        let error = LedgerRules.check(plan, available: 8, catalog: .default)
        #expect(error?.code == .insufficientCredits)
        #expect(error?.required == 15)
        #expect(error?.available == 8)
        #expect(error?.suggestedPackage == "starter")
        #expect(LedgerRules.check(plan, available: 15, catalog: .default) == nil)
        let operators = LedgerRules.check(plan, available: 8, catalog: .default, suggestPackage: false)
        #expect(operators?.code == .insufficientCredits)
        #expect(operators?.required == 15 && operators?.available == 8)
        #expect(operators?.suggestedPackage == nil)
    }

    @Test func defaultCatalogIsValidAndBadOnesNameTheField() throws {
        try Catalog.default.validate()
        func field(_ change: (inout Catalog) -> Void) -> String? {
            var c = Catalog.default
            change(&c)
            do { try c.validate(); return nil } catch { return error.field }
        }
        #expect(field { $0.packages[1].priceCents = 0 } == "packages[1].priceCents")
        #expect(field { $0.packages[0].credits = -5 } == "packages[0].credits")
        #expect(field { $0.packages[2].id = "starter" } == "packages[2].id")
        #expect(field { $0.uploadTypes[0].id = "has space" } == "uploadTypes[0].id")
        #expect(field { $0.features[1].credits = Limits.catalogCreditsMax + 1 } == "features[1].credits")
        #expect(field { $0.batchDiscount.percent = 101 } == "batchDiscount.percent")
        #expect(field { $0.batchDiscount.minFiles = 1 } == "batchDiscount.minFiles")
        #expect(field { $0.packages = [] } == "packages")
    }

    @Test func estimatesCannotOverflowWithinTheLimits() throws {
        var c = Catalog.default
        c.uploadTypes = [PricedItem(id: "huge", credits: Limits.catalogCreditsMax)]
        c.features = (0..<50).map { PricedItem(id: "f\($0)", credits: Limits.catalogCreditsMax) }
        try c.validate()
        let e = try Pricing.estimate(
            EstimateRequest(fileType: "huge", fileCount: Limits.fileCountMax, features: c.features.map(\.id)), catalog: c)
        let total = Limits.catalogCreditsMax * Int64(Limits.fileCountMax) + 50 * Limits.catalogCreditsMax
        #expect(e.discountCredits == total * 15 / 100)
        #expect(e.credits == total - total * 15 / 100)
    }
}

@Suite struct LedgerRulesTests {
    @Test func canonicalFormsDifferWhenAnyFieldDiffers() {
        let a = LedgerOperation.spend(SpendRequest(userId: "u", credits: 15, fileUploadId: "f", description: "x"))
        let b = LedgerOperation.spend(SpendRequest(userId: "u", credits: 16, fileUploadId: "f", description: "x"))
        let c = LedgerOperation.spend(SpendRequest(userId: "u", credits: 15, fileUploadId: "f", description: "y"))
        #expect(a.canonicalForm != b.canonicalForm)
        #expect(a.canonicalForm != c.canonicalForm)
        #expect(a.naturalKey == b.naturalKey)
    }

    @Test func validationRejectsBadAmountsAndIdentifiers() {
        func field(_ op: LedgerOperation) -> String? {
            do { try op.validate(catalog: .default); return nil } catch { return error.field }
        }
        #expect(field(.spend(SpendRequest(userId: "u", credits: 0, fileUploadId: "f"))) == "credits")
        #expect(field(.spend(SpendRequest(userId: "u", credits: -15, fileUploadId: "f"))) == "credits")
        #expect(field(.spend(SpendRequest(userId: "", credits: 1, fileUploadId: "f"))) == "userId")
        #expect(field(.spend(SpendRequest(userId: "u", credits: 1, fileUploadId: "a b"))) == "fileUploadId")
        #expect(field(.purchase(PurchaseRequest(userId: "u", package: "gold", paymentMethod: .stripe, paymentId: "p"))) == "package")
        #expect(field(.adjust(AdjustmentRequest(userId: "u", credits: 0, adjustmentId: "a", reason: "r"))) == "credits")
        #expect(field(.adjust(AdjustmentRequest(userId: "u", credits: 5, adjustmentId: "a", reason: ""))) == "reason")
        #expect(field(.spend(SpendRequest(userId: "u", credits: 1, fileUploadId: "f", description: String(repeating: "x", count: 501)))) == "description")
        #expect(field(.spend(SpendRequest(userId: "u", credits: 1, fileUploadId: "f"))) == nil)
    }
}

@Suite struct PlatformStatsTests {
    @Test func stripeFeesAreTwoPointNinePercentPlusThirtyCentsRoundedHalfUp() {
        #expect(PaymentFeeSchedule.stripe.feeCents(priceCents: 2000) == 58 + 30)
        #expect(PaymentFeeSchedule.stripe.feeCents(priceCents: 500) == 15 + 30)   // 14.5 → 15
        #expect(PaymentFeeSchedule.stripe.feeCents(priceCents: 6000) == 174 + 30)
    }

    @Test func reportFiguresFollowTheirDefinitions() {
        // Two creator purchases ($20 each) and one pro ($60); 1,200 credits spent on 80 uploads.
        let totals = PlatformTotals(
            purchases: 3, revenueCents: 10_000, creditsSold: 3_400, creditsSpent: 1_200, creditsOutstanding: 2_200,
            activeUsers: 4, payingUsers: 2, confirmedUploads: 80, uploadCreditsCharged: 1_200)
        let s = PlatformStats.compute(days: 30, totals: totals, purchasePricesCents: [2000, 2000, 6000],
                                      gasSpentUsdCents: 1_000, fees: .stripe)
        #expect(s.netRevenueCents == 10_000)
        #expect(s.paymentFeesCents == 88 + 88 + 204)
        #expect(s.grossMarginCents == 10_000 - 380 - 1_000)
        #expect(s.grossMarginPPM == 862_000)
        #expect(s.conversionRatePPM == 500_000)
        #expect(s.averageUploadCostCreditsHundredths == 1_500)
        // 15 credits × (10,000 cents / 3,400 credits) = 44.1 → 44 cents.
        #expect(s.averageUploadCostUsdCents == 44)
    }
}

/// SEED.md's sponsorship rule.
@Suite struct SponsorshipRulesTests {
    let rules = SponsorshipRules()
    let day: Int64 = 86_400_000
    let now: Int64 = 1_000 * 86_400_000

    @Test func aCreatorWithAWalletWhoSignedUp40DaysAgoIsNotEligible() {
        let e = rules.eligibility(UserProfile(userId: "u", walletAddress: "f1abc", signedUpAtMs: now - 40 * day), nowMs: now)
        #expect(!e.eligible && e.remainingSponsored == 0 && e.reason == "established_creator")
    }

    @Test func noWalletOrARecentSignupIsEligibleForFive() {
        let noWallet = rules.eligibility(UserProfile(userId: "u", walletAddress: nil, signedUpAtMs: now - 400 * day), nowMs: now)
        #expect(noWallet.eligible && noWallet.remainingSponsored == 5 && noWallet.reason == "no_wallet")
        let recent = rules.eligibility(UserProfile(userId: "u", walletAddress: "f1abc", signedUpAtMs: now - 29 * day), nowMs: now)
        #expect(recent.eligible && recent.reason == "recent_signup")
        let edge = rules.eligibility(UserProfile(userId: "u", walletAddress: "f1abc", signedUpAtMs: now - 30 * day), nowMs: now)
        #expect(!edge.eligible)
    }

    @Test func usedSlotsAndUnregisteredCreators() {
        let two = rules.eligibility(UserProfile(userId: "u", walletAddress: nil, signedUpAtMs: now, sponsoredUploadsUsed: 3), nowMs: now)
        #expect(two.eligible && two.remainingSponsored == 2)
        let none = rules.eligibility(UserProfile(userId: "u", walletAddress: nil, signedUpAtMs: now, sponsoredUploadsUsed: 5), nowMs: now)
        #expect(!none.eligible && none.reason == "free_uploads_used")
        #expect(rules.eligibility(nil, nowMs: now).reason == "not_registered")
    }
}
