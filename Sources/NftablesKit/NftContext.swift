import CNftables

/// What libnftables returned for one command buffer.
public struct NftResult: Sendable {
    public let succeeded: Bool
    public let output: String
    public let error: String

    public init(succeeded: Bool, output: String, error: String) {
        self.succeeded = succeeded
        self.output = output
        self.error = error
    }
}

public enum NftError: Error, Sendable {
    case contextCreationFailed
}

/// A libnftables context. Not Sendable: libnftables contexts are not thread-safe, so each one
/// stays with the task that created it.
public final class NftContext {
    private let context: OpaquePointer

    /// - Parameter dryRun: validate against the kernel (in the current network namespace)
    ///   without committing anything; needs CAP_NET_ADMIN like a real apply.
    public init(dryRun: Bool = false) throws(NftError) {
        guard let context = nft_ctx_new(UInt32(NFT_CTX_DEFAULT)) else { throw .contextCreationFailed }
        self.context = context
        _ = nft_ctx_buffer_output(context)
        _ = nft_ctx_buffer_error(context)
        nft_ctx_set_dry_run(context, dryRun)
        // libnftables 1.0.6 reads JSON input only with JSON output on; native syntax still works.
        setOutputFlag(NFT_CTX_OUTPUT_JSON, true)
    }

    deinit { nft_ctx_free(context) }

    /// Output format of listings: JSON or native text.
    public var jsonOutput: Bool {
        get { outputFlag(NFT_CTX_OUTPUT_JSON) }
        set { setOutputFlag(NFT_CTX_OUTPUT_JSON, newValue) }
    }

    /// Listings without counter values and other state, so two listings of the same rules compare equal.
    public var stateless: Bool {
        get { outputFlag(NFT_CTX_OUTPUT_STATELESS) }
        set { setOutputFlag(NFT_CTX_OUTPUT_STATELESS, newValue) }
    }

    /// Listings without set elements: the structure of a table, however large its sets.
    public var terse: Bool {
        get { outputFlag(NFT_CTX_OUTPUT_TERSE) }
        set { setOutputFlag(NFT_CTX_OUTPUT_TERSE, newValue) }
    }

    /// `flag` is one of libnftables' `NFT_CTX_OUTPUT_*` bits.
    private func outputFlag(_ flag: Int) -> Bool { nft_ctx_output_get_flags(context) & UInt32(flag) != 0 }

    private func setOutputFlag(_ flag: Int, _ on: Bool) {
        let flags = nft_ctx_output_get_flags(context)
        nft_ctx_output_set_flags(context, on ? flags | UInt32(flag) : flags & ~UInt32(flag))
    }

    /// Runs one buffer of commands (native syntax or JSON) as one kernel transaction.
    @discardableResult
    public func run(_ commands: String) -> NftResult {
        result(nft_run_cmd_from_buffer(context, commands))
    }

    /// Runs a file; errors then carry `file:line:col` positions.
    @discardableResult
    public func runFile(_ path: String) -> NftResult {
        result(nft_run_cmd_from_filename(context, path))
    }

    /// Copies the buffers at once: the next command reuses them.
    private func result(_ code: Int32) -> NftResult {
        let output = nft_ctx_get_output_buffer(context).map { String(cString: $0) } ?? ""
        let error = nft_ctx_get_error_buffer(context).map { String(cString: $0) } ?? ""
        return NftResult(succeeded: code == 0, output: output, error: error)
    }
}
