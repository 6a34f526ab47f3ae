/// The OpenAPI 3.1 description served at `/openapi.yaml`. A test compares its paths with the
/// routes the server registers, the test command validates it and fuzzes a live server with it.
enum OpenAPISpec {
    static let yaml = #"""
openapi: 3.1.0
info:
  title: StreamVault Credits
  version: "1.0.0"
  description: >-
    Credit ledger of StreamVault: packages bought with cards or PayPal, fixed credit prices for
    uploads held and settled on Filecoin, operators' reports. Every error is
    {"error": CODE, "message": ...}. Every POST accepts an Idempotency-Key header.
servers:
  - url: /
security:
  - bearer: []
paths:
  /healthz:
    get:
      summary: Liveness
      security: []
      responses:
        "200":
          description: Up
          content:
            application/json:
              schema:
                type: object
                required: [status]
                properties:
                  status: {type: string}
  /readyz:
    get:
      summary: Readiness
      description: >-
        200 when the database answers a read within 2 s; 503 UNAVAILABLE otherwise (the cause is
        logged, not sent). /healthz says only that the process answers.
      security: []
      responses:
        "200":
          description: Ready
          content:
            application/json:
              schema:
                type: object
                required: [status, database]
                properties:
                  status: {type: string, enum: [ok]}
                  database: {type: string, enum: [ok]}
        "503": {$ref: "#/components/responses/Error"}
  /metrics:
    get:
      summary: Prometheus metrics
      security: []
      responses:
        "200":
          description: Prometheus text format
          content:
            text/plain:
              schema: {type: string}
  /openapi.yaml:
    get:
      summary: This description
      security: []
      responses:
        "200":
          description: OpenAPI 3.1 YAML
          content:
            application/yaml:
              schema: {type: string}
  /admin:
    get:
      summary: Operators' dashboard (HTML)
      security:
        - basic: []
        - bearer: []
      responses:
        "200":
          description: The page
          content:
            text/html:
              schema: {type: string}
        "401": {$ref: "#/components/responses/Error"}
        "403": {$ref: "#/components/responses/Error"}
        "500": {$ref: "#/components/responses/Error"}
        "503": {$ref: "#/components/responses/Error"}
  /api/credits/balance:
    get:
      summary: A user's balances (zeros for a user never seen)
      parameters:
        - {$ref: "#/components/parameters/UserIdQuery"}
      responses:
        "200":
          description: Balances
          content:
            application/json:
              schema: {$ref: "#/components/schemas/Balance"}
        "400": {$ref: "#/components/responses/Error"}
        "401": {$ref: "#/components/responses/Error"}
        "500": {$ref: "#/components/responses/Error"}
        "503": {$ref: "#/components/responses/Error"}
  /api/credits/purchase:
    post:
      summary: Buy a credit package (granted at once); idempotent on (paymentMethod, paymentId)
      parameters:
        - {$ref: "#/components/parameters/IdempotencyKey"}
      requestBody:
        required: true
        content:
          application/json:
            schema:
              type: object
              required: [userId, package, paymentMethod, paymentId]
              properties:
                userId: {$ref: "#/components/schemas/Identifier"}
                package: {type: string, enum: [starter, creator, pro]}
                paymentMethod: {type: string, enum: [stripe, paypal]}
                paymentId: {$ref: "#/components/schemas/Identifier"}
      responses:
        "201":
          description: Purchased (or the original response, replayed)
          content:
            application/json:
              schema: {$ref: "#/components/schemas/PurchaseReceipt"}
        "202":
          description: Recorded as pending; credits arrive with the provider's verified event (--require-payment-confirmation)
          content:
            application/json:
              schema: {$ref: "#/components/schemas/PurchaseReceipt"}
        "400": {$ref: "#/components/responses/Error"}
        "401": {$ref: "#/components/responses/Error"}
        "409": {$ref: "#/components/responses/Error"}
        "413": {$ref: "#/components/responses/Error"}
        "500": {$ref: "#/components/responses/Error"}
        "503": {$ref: "#/components/responses/Error"}
  /api/credits/estimate:
    post:
      summary: Price an upload
      requestBody:
        required: true
        content:
          application/json:
            schema:
              type: object
              required: [fileType]
              properties:
                fileType: {type: string, enum: [audio, video, album]}
                fileCount: {type: integer, minimum: 1, maximum: 1000}
                features:
                  type: array
                  maxItems: 3
                  uniqueItems: true
                  items: {type: string, enum: [premium_encryption, quality_variants, custom_thumbnail]}
                userId: {$ref: "#/components/schemas/Identifier"}
      responses:
        "200":
          description: The price
          content:
            application/json:
              schema: {$ref: "#/components/schemas/Estimate"}
        "400": {$ref: "#/components/responses/Error"}
        "401": {$ref: "#/components/responses/Error"}
        "413": {$ref: "#/components/responses/Error"}
        "500": {$ref: "#/components/responses/Error"}
  /api/credits/spend:
    post:
      summary: Spend credits; idempotent on fileUploadId
      parameters:
        - {$ref: "#/components/parameters/IdempotencyKey"}
      requestBody:
        required: true
        content:
          application/json:
            schema:
              type: object
              required: [userId, credits, fileUploadId]
              properties:
                userId: {$ref: "#/components/schemas/Identifier"}
                credits: {type: integer, minimum: 1, maximum: 1000000000}
                fileUploadId: {$ref: "#/components/schemas/Identifier"}
                description: {type: string, maxLength: 500}
      responses:
        "201":
          description: Spent
          content:
            application/json:
              schema: {$ref: "#/components/schemas/SpendReceipt"}
        "400": {$ref: "#/components/responses/Error"}
        "401": {$ref: "#/components/responses/Error"}
        "402": {$ref: "#/components/responses/Error"}
        "409": {$ref: "#/components/responses/Error"}
        "413": {$ref: "#/components/responses/Error"}
        "500": {$ref: "#/components/responses/Error"}
        "503": {$ref: "#/components/responses/Error"}
  /api/credits/sponsored-uploads:
    post:
      summary: The platform pays an upload outright from its sponsorship account (one of the creator's free uploads)
      parameters:
        - {$ref: "#/components/parameters/IdempotencyKey"}
      requestBody:
        required: true
        content:
          application/json:
            schema:
              type: object
              required: [userId, fileUploadId, creditsCost]
              properties:
                userId: {$ref: "#/components/schemas/Identifier"}
                reason: {type: string, maxLength: 500}
                fileUploadId: {$ref: "#/components/schemas/Identifier"}
                creditsCost: {type: integer, minimum: 1, maximum: 10000000}
                usdValue:
                  oneOf:
                    - {type: number, minimum: 0, maximum: 1000000, multipleOf: 0.01}
                    - {type: string, pattern: "^[0-9]{1,7}([.][0-9]{1,2})?$"}
                gasValue:
                  oneOf:
                    - {type: number, minimum: 0, maximum: 1000000, multipleOf: 0.01}
                    - {type: string, pattern: "^[0-9]{1,7}([.][0-9]{1,2})?$"}
      responses:
        "201":
          description: Sponsored (or the original response, replayed)
          content:
            application/json:
              schema:
                type: object
                required: [transactionId, userId, fileUploadId, credits, remainingSponsored, balance]
                properties:
                  transactionId: {type: string}
                  userId: {type: string}
                  fileUploadId: {type: string}
                  credits: {type: integer}
                  remainingSponsored: {type: integer}
                  balance: {type: integer}
        "400": {$ref: "#/components/responses/Error"}
        "401": {$ref: "#/components/responses/Error"}
        "409": {$ref: "#/components/responses/Error"}
        "413": {$ref: "#/components/responses/Error"}
        "500": {$ref: "#/components/responses/Error"}
        "503": {$ref: "#/components/responses/Error"}
  /api/credits/transactions:
    get:
      summary: A user's journal rows, newest first
      parameters:
        - {$ref: "#/components/parameters/UserIdQuery"}
        - {$ref: "#/components/parameters/PageLimit"}
        - {$ref: "#/components/parameters/PageCursor"}
      responses:
        "200":
          description: A page
          content:
            application/json:
              schema: {$ref: "#/components/schemas/TransactionPage"}
        "400": {$ref: "#/components/responses/Error"}
        "401": {$ref: "#/components/responses/Error"}
        "500": {$ref: "#/components/responses/Error"}
        "503": {$ref: "#/components/responses/Error"}
  /api/credits/lots:
    get:
      summary: A user's credit lots, oldest first (an empty page for a user never seen)
      parameters:
        - {$ref: "#/components/parameters/UserIdQuery"}
        - {$ref: "#/components/parameters/PageLimit"}
        - {$ref: "#/components/parameters/PageCursor"}
      responses:
        "200":
          description: A page
          content:
            application/json:
              schema: {$ref: "#/components/schemas/LotPage"}
        "400": {$ref: "#/components/responses/Error"}
        "401": {$ref: "#/components/responses/Error"}
        "500": {$ref: "#/components/responses/Error"}
        "503": {$ref: "#/components/responses/Error"}
  /api/credits/milestones:
    post:
      summary: Grant a milestone bonus, once per user and milestone
      parameters:
        - {$ref: "#/components/parameters/IdempotencyKey"}
      requestBody:
        required: true
        content:
          application/json:
            schema:
              type: object
              required: [userId, milestone]
              properties:
                userId: {$ref: "#/components/schemas/Identifier"}
                milestone: {type: string, enum: [plays_1k, followers_5k, first_creator_coin]}
      responses:
        "201":
          description: Granted (or the original response, replayed)
          content:
            application/json:
              schema: {$ref: "#/components/schemas/MilestoneReceipt"}
        "400": {$ref: "#/components/responses/Error"}
        "401": {$ref: "#/components/responses/Error"}
        "409": {$ref: "#/components/responses/Error"}
        "413": {$ref: "#/components/responses/Error"}
        "500": {$ref: "#/components/responses/Error"}
        "503": {$ref: "#/components/responses/Error"}
  /api/users:
    post:
      summary: Register or update a creator (walletAddress absent keeps it, null clears it)
      requestBody:
        required: true
        content:
          application/json:
            schema:
              type: object
              required: [userId]
              properties:
                userId: {$ref: "#/components/schemas/Identifier"}
                walletAddress:
                  oneOf:
                    - {$ref: "#/components/schemas/Identifier"}
                    - {type: "null"}
                signedUpAt: {type: string, format: date-time}
      responses:
        "200":
          description: The creator
          content:
            application/json:
              schema:
                type: object
                required: [userId, walletAddress, signedUpAt, sponsoredUploadsUsed]
                properties:
                  userId: {type: string}
                  walletAddress: {type: [string, "null"]}
                  signedUpAt: {type: string}
                  sponsoredUploadsUsed: {type: integer}
        "400": {$ref: "#/components/responses/Error"}
        "401": {$ref: "#/components/responses/Error"}
        "413": {$ref: "#/components/responses/Error"}
        "500": {$ref: "#/components/responses/Error"}
        "503": {$ref: "#/components/responses/Error"}
  /api/credits/sponsorship:
    get:
      summary: Whether a creator's next upload is sponsored (first 5, no wallet or signed up in the last 30 days)
      parameters:
        - {$ref: "#/components/parameters/UserIdQuery"}
      responses:
        "200":
          description: Eligibility
          content:
            application/json:
              schema:
                type: object
                required: [eligible, remainingSponsored, reason]
                properties:
                  eligible: {type: boolean}
                  remainingSponsored: {type: integer, minimum: 0}
                  reason: {type: string, enum: [no_wallet, recent_signup, not_registered, free_uploads_used, established_creator]}
        "400": {$ref: "#/components/responses/Error"}
        "401": {$ref: "#/components/responses/Error"}
        "500": {$ref: "#/components/responses/Error"}
        "503": {$ref: "#/components/responses/Error"}
  /api/uploads:
    post:
      summary: Queue an upload; its estimate is held until confirmed (captured) or failed (released)
      parameters:
        - {$ref: "#/components/parameters/IdempotencyKey"}
      requestBody:
        required: true
        content:
          application/json:
            schema:
              type: object
              required: [uploadId, userId, fileType, sizeBytes]
              properties:
                uploadId: {$ref: "#/components/schemas/Identifier"}
                userId: {$ref: "#/components/schemas/Identifier"}
                fileType: {type: string, enum: [audio, video, album]}
                fileCount: {type: integer, minimum: 1, maximum: 1000}
                features:
                  type: array
                  maxItems: 3
                  uniqueItems: true
                  items: {type: string, enum: [premium_encryption, quality_variants, custom_thumbnail]}
                sizeBytes: {type: integer, minimum: 1, maximum: 68719476736}
                priority: {type: string, enum: [low, medium, high]}
      responses:
        "202":
          description: Queued (or the original response, replayed)
          content:
            application/json:
              schema: {$ref: "#/components/schemas/UploadReceipt"}
        "400": {$ref: "#/components/responses/Error"}
        "401": {$ref: "#/components/responses/Error"}
        "402": {$ref: "#/components/responses/Error"}
        "409": {$ref: "#/components/responses/Error"}
        "413": {$ref: "#/components/responses/Error"}
        "500": {$ref: "#/components/responses/Error"}
        "503": {$ref: "#/components/responses/Error"}
  /api/webhooks/stripe:
    post:
      summary: Stripe events, verified by their Stripe-Signature (no key)
      security: []
      parameters:
        - {name: Stripe-Signature, in: header, required: true, schema: {type: string}}
      requestBody:
        required: true
        content:
          application/json:
            schema: {type: object}
      responses:
        "200":
          description: Received (applied, already applied, or ignored)
          content:
            application/json:
              schema: {$ref: "#/components/schemas/WebhookAnswer"}
        "400": {$ref: "#/components/responses/Error"}
        "404": {$ref: "#/components/responses/Error"}
        "413": {$ref: "#/components/responses/Error"}
        "500": {$ref: "#/components/responses/Error"}
        "503": {$ref: "#/components/responses/Error"}
  /api/webhooks/paypal:
    post:
      summary: PayPal events, verified by their transmission signature (no key)
      security: []
      parameters:
        - {name: PAYPAL-TRANSMISSION-ID, in: header, required: true, schema: {type: string}}
        - {name: PAYPAL-TRANSMISSION-TIME, in: header, required: true, schema: {type: string}}
        - {name: PAYPAL-TRANSMISSION-SIG, in: header, required: true, schema: {type: string}}
        - {name: PAYPAL-AUTH-ALGO, in: header, required: false, schema: {type: string}}
        - {name: PAYPAL-CERT-URL, in: header, required: false, schema: {type: string}}
      requestBody:
        required: true
        content:
          application/json:
            schema: {type: object}
      responses:
        "200":
          description: Received (applied, already applied, or ignored)
          content:
            application/json:
              schema: {$ref: "#/components/schemas/WebhookAnswer"}
        "400": {$ref: "#/components/responses/Error"}
        "404": {$ref: "#/components/responses/Error"}
        "413": {$ref: "#/components/responses/Error"}
        "500": {$ref: "#/components/responses/Error"}
        "503": {$ref: "#/components/responses/Error"}
  /api/uploads/{uploadId}:
    get:
      summary: An upload's state
      parameters:
        - {name: uploadId, in: path, required: true, schema: {$ref: "#/components/schemas/Identifier"}}
      responses:
        "200":
          description: The upload
          content:
            application/json:
              schema: {$ref: "#/components/schemas/Upload"}
        "400": {$ref: "#/components/responses/Error"}
        "401": {$ref: "#/components/responses/Error"}
        "404": {$ref: "#/components/responses/Error"}
        "500": {$ref: "#/components/responses/Error"}
        "503": {$ref: "#/components/responses/Error"}
  /api/admin/adjustments:
    post:
      summary: An operator's grant (positive) or correction (negative); idempotent on adjustmentId
      parameters:
        - {$ref: "#/components/parameters/IdempotencyKey"}
      requestBody:
        required: true
        content:
          application/json:
            schema:
              type: object
              required: [userId, credits, adjustmentId, reason]
              additionalProperties: false
              properties:
                userId: {$ref: "#/components/schemas/Identifier"}
                credits: {type: integer, minimum: -1000000000, maximum: 1000000000, not: {const: 0}}
                adjustmentId: {$ref: "#/components/schemas/Identifier"}
                reason: {type: string, minLength: 1, maxLength: 500}
                category: {type: string, enum: [paid, promotional], description: "the lot a grant makes (default promotional: it expires)"}
      responses:
        "201":
          description: Adjusted
          content:
            application/json:
              schema: {$ref: "#/components/schemas/AdjustmentReceipt"}
        "400": {$ref: "#/components/responses/Error"}
        "401": {$ref: "#/components/responses/Error"}
        "402": {$ref: "#/components/responses/Error"}
        "403": {$ref: "#/components/responses/Error"}
        "409": {$ref: "#/components/responses/Error"}
        "413": {$ref: "#/components/responses/Error"}
        "500": {$ref: "#/components/responses/Error"}
        "503": {$ref: "#/components/responses/Error"}
  /api/admin/platform-stats:
    get:
      summary: The platform report over the last N days
      parameters:
        - {$ref: "#/components/parameters/Days"}
      responses:
        "200":
          description: The report
          content:
            application/json:
              schema: {$ref: "#/components/schemas/PlatformStats"}
        "400": {$ref: "#/components/responses/Error"}
        "401": {$ref: "#/components/responses/Error"}
        "403": {$ref: "#/components/responses/Error"}
        "500": {$ref: "#/components/responses/Error"}
        "503": {$ref: "#/components/responses/Error"}
  /api/admin/gas-stats:
    get:
      summary: Gas spent and saved over the last N days
      parameters:
        - {$ref: "#/components/parameters/Days"}
      responses:
        "200":
          description: The figures
          content:
            application/json:
              schema: {$ref: "#/components/schemas/GasStats"}
        "400": {$ref: "#/components/responses/Error"}
        "401": {$ref: "#/components/responses/Error"}
        "403": {$ref: "#/components/responses/Error"}
        "404": {$ref: "#/components/responses/Error"}
        "500": {$ref: "#/components/responses/Error"}
        "503": {$ref: "#/components/responses/Error"}
  /api/admin/process-batch:
    post:
      summary: Send everything queued now, or retry one waiting batch now
      requestBody:
        required: false
        content:
          application/json:
            schema:
              type: object
              additionalProperties: false
              properties:
                batchId: {$ref: "#/components/schemas/Identifier"}
      responses:
        "200":
          description: The batches sent
          content:
            application/json:
              schema:
                type: object
                required: [batches]
                properties:
                  batches: {type: array, items: {type: string}}
        "400": {$ref: "#/components/responses/Error"}
        "401": {$ref: "#/components/responses/Error"}
        "403": {$ref: "#/components/responses/Error"}
        "404": {$ref: "#/components/responses/Error"}
        "413": {$ref: "#/components/responses/Error"}
        "500": {$ref: "#/components/responses/Error"}
        "503": {$ref: "#/components/responses/Error"}
components:
  securitySchemes:
    bearer: {type: http, scheme: bearer}
    basic: {type: http, scheme: basic}
  parameters:
    UserIdQuery:
      name: userId
      in: query
      required: true
      schema: {$ref: "#/components/schemas/Identifier"}
    IdempotencyKey:
      name: Idempotency-Key
      in: header
      required: false
      schema: {$ref: "#/components/schemas/Identifier"}
    PageLimit:
      name: limit
      in: query
      schema: {type: integer, minimum: 1, maximum: 100}
    PageCursor:
      name: cursor
      in: query
      description: the nextCursor of the previous page
      schema: {type: string}
    Days:
      name: days
      in: query
      schema: {type: integer, minimum: 1, maximum: 366}
  responses:
    Error:
      description: An error
      content:
        application/json:
          schema: {$ref: "#/components/schemas/Error"}
  schemas:
    Identifier:
      type: string
      minLength: 1
      maxLength: 128
      pattern: "^[A-Za-z0-9_.:@-]+$"
    Error:
      type: object
      required: [error, message]
      properties:
        error:
          type: string
          enum: [VALIDATION_ERROR, UNAUTHORIZED, FORBIDDEN, INSUFFICIENT_CREDITS, ACCOUNT_IN_ARREARS, NOT_FOUND, IDEMPOTENCY_CONFLICT, INVALID_STATE, NOT_ELIGIBLE, PAYLOAD_TOO_LARGE, UNAVAILABLE, INTERNAL]
        message: {type: string}
        field: {type: string}
        required: {type: integer}
        available: {type: integer}
        suggestedPackage: {type: string}
        owed: {type: integer, description: "ACCOUNT_IN_ARREARS: credits owed"}
    WebhookAnswer:
      type: object
      required: [received, applied]
      properties:
        received: {type: boolean}
        applied: {type: boolean}
        eventId: {type: string}
        type: {type: string}
        purchaseId: {type: string}
        status: {$ref: "#/components/schemas/PurchaseStatus"}
        creditsChange: {type: integer, description: "credits this event granted (positive) or took back (negative)"}
        detail: {type: string}
    PurchaseStatus:
      type: string
      enum: [unclaimed, pending, completed, failed, partially_refunded, refunded, disputed, reversed]
    Balance:
      type: object
      required: [userId, balance, reserved, totalEarned, totalSpent, totalPurchased, arrears, expiringSoon]
      properties:
        userId: {type: string}
        balance: {type: integer, description: "available credits; below zero only in arrears"}
        arrears: {type: integer, minimum: 0, description: "credits owed after a payment reversal (0 when none)"}
        expiringSoon: {type: integer, minimum: 0, description: "credits of lots expiring within 30 days"}
        nextExpiryAt: {type: string, format: date-time, description: "when the next lot with credits left expires"}
        reserved: {type: integer, minimum: 0}
        totalEarned: {type: integer}
        totalSpent: {type: integer}
        totalPurchased: {type: integer}
    PurchaseReceipt:
      type: object
      required: [purchaseId, userId, package, credits, baseCredits, bonusCredits, priceCents, status, balance]
      properties:
        purchaseId: {type: string}
        userId: {type: string}
        package: {type: string}
        credits: {type: integer}
        baseCredits: {type: integer}
        bonusCredits: {type: integer}
        priceCents: {type: integer}
        paymentMethod: {type: string}
        paymentId: {type: string}
        status: {$ref: "#/components/schemas/PurchaseStatus"}
        balance: {type: integer}
        arrearsRepaid: {type: integer, description: "credits of this purchase that repaid arrears first"}
    Estimate:
      type: object
      required: [credits, baseCredits, featureCredits, discountCredits, fileType, fileCount, features]
      properties:
        credits: {type: integer}
        baseCredits: {type: integer}
        featureCredits: {type: integer}
        discountCredits: {type: integer}
        fileType: {type: string}
        fileCount: {type: integer}
        features: {type: array, items: {type: string}}
    SpendReceipt:
      type: object
      required: [transactionId, userId, credits, fileUploadId, balance]
      properties:
        transactionId: {type: string}
        userId: {type: string}
        credits: {type: integer}
        fileUploadId: {type: string}
        balance: {type: integer}
    TransactionPage:
      type: object
      required: [data]
      properties:
        nextCursor: {type: [string, "null"]}
        data:
          type: array
          items:
            type: object
            required: [id, type, credits, balanceAfter, counterparty, reference, description, createdAt]
            properties:
              id: {type: string}
              type: {type: string}
              credits: {type: integer}
              balanceAfter: {type: integer}
              counterparty: {type: string}
              reference: {type: string}
              description: {type: string}
              createdAt: {type: string}
              lots:
                type: array
                description: the credit lots the row took credits from or put them into
                items:
                  type: object
                  required: [lotId, credits]
                  properties:
                    lotId: {type: integer}
                    credits: {type: integer}
    LotPage:
      type: object
      required: [userId, data]
      properties:
        userId: {type: string}
        nextCursor: {type: [string, "null"]}
        data:
          type: array
          items:
            type: object
            required: [lotId, category, source, granted, remaining, expired, createdAt]
            properties:
              lotId: {type: integer}
              category: {type: string, enum: [paid, promotional]}
              source: {type: string, description: the reference of the operation that granted it}
              granted: {type: integer}
              remaining: {type: integer}
              expiresAt: {type: string, description: absent for paid credits, which never expire}
              expired: {type: boolean}
              createdAt: {type: string}
    MilestoneReceipt:
      type: object
      required: [transactionId, userId, milestone, credits, balance]
      properties:
        transactionId: {type: string}
        userId: {type: string}
        milestone: {type: string}
        credits: {type: integer}
        balance: {type: integer}
    UploadReceipt:
      type: object
      required: [uploadId, userId, status, creditsReserved, sponsored, balance]
      properties:
        uploadId: {type: string}
        userId: {type: string}
        status: {type: string}
        creditsReserved: {type: integer}
        sponsored: {type: boolean}
        balance: {type: integer}
    Upload:
      type: object
      required: [uploadId, userId, status, creditsReserved, creditsCharged, fileType, fileCount, features, sizeBytes, priority, attempts, createdAt, updatedAt]
      properties:
        uploadId: {type: string}
        userId: {type: string}
        status: {type: string, enum: [queued, batched, submitted, confirmed, failed, refunded]}
        sponsored: {type: boolean}
        batchId: {type: [string, "null"]}
        creditsReserved: {type: integer}
        creditsCharged: {type: integer}
        failureReason: {type: [string, "null"]}
        fileType: {type: string}
        fileCount: {type: integer}
        features: {type: array, items: {type: string}}
        sizeBytes: {type: integer}
        priority: {type: string}
        attempts: {type: integer}
        createdAt: {type: string}
        updatedAt: {type: string}
    AdjustmentReceipt:
      type: object
      required: [transactionId, adjustmentId, userId, credits, balance]
      properties:
        transactionId: {type: string}
        adjustmentId: {type: string}
        userId: {type: string}
        credits: {type: integer}
        balance: {type: integer}
    PlatformStats:
      type: object
      required: [days, totalRevenue, refunds, netRevenue, paymentFees, gasSpentUsd, grossMargin, creditsSold, creditsSpent, creditsOutstanding, activeUsers, payingUsers, conversionRate, averageUploadCost]
      properties:
        days: {type: integer}
        totalRevenue: {type: string}
        totalRevenueCents: {type: integer}
        refunds: {type: string}
        netRevenue: {type: string}
        netRevenueCents: {type: integer}
        paymentFees: {type: string}
        gasSpentUsd: {type: string}
        grossMargin: {type: string}
        grossMarginCents: {type: integer}
        grossMarginPercent: {type: string}
        purchases: {type: integer}
        creditsSold: {type: integer}
        creditsSpent: {type: integer}
        creditsOutstanding: {type: integer}
        activeUsers: {type: integer}
        payingUsers: {type: integer}
        conversionRate: {type: string}
        averageUploadCost:
          type: object
          required: [credits, usd]
          properties:
            credits: {type: string}
            usd: {type: string}
    GasStats:
      type: object
      required: [totalSavings, successRate, batches, uploads, averageBatchSize, gasSpentAttoFil, gasSpentUsd, individualCostUsd, batchingSavingsUsd, timingSavingsUsd]
      properties:
        totalSavings: {type: string}
        totalSavingsCents: {type: integer}
        successRate: {type: string}
        batches: {type: integer}
        uploads: {type: integer}
        averageBatchSize: {type: string}
        gasSpentAttoFil: {type: string}
        gasSpentUsd: {type: string}
        gasSpentUsdCents: {type: integer}
        individualCostAttoFil: {type: string}
        individualCostUsd: {type: string}
        batchingSavingsAttoFil: {type: string}
        batchingSavingsUsd: {type: string}
        batchingSavingsPercent: {type: string}
        timingSavingsAttoFil: {type: string}
        timingSavingsUsd: {type: string}
        days: {type: integer}
"""#
}

/// The spec's text, for tests and tools.
public enum OpenAPISpecAccess {
    public static var yaml: String { OpenAPISpec.yaml }
}
