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
        nft_ctx_output_set_flags(context, nft_ctx_output_get_flags(context) | UInt32(NFT_CTX_OUTPUT_JSON))
    }

    deinit { nft_ctx_free(context) }

    /// Output format of listings: JSON or native text.
    public var jsonOutput: Bool {
        get { nft_ctx_output_get_flags(context) & UInt32(NFT_CTX_OUTPUT_JSON) != 0 }
        set {
            var flags = nft_ctx_output_get_flags(context)
            if newValue { flags |= UInt32(NFT_CTX_OUTPUT_JSON) } else { flags &= ~UInt32(NFT_CTX_OUTPUT_JSON) }
            nft_ctx_output_set_flags(context, flags)
        }
    }

    /// Listings without counter values and other state, so two listings of the same rules compare equal.
    public var stateless: Bool {
        get { nft_ctx_output_get_flags(context) & UInt32(NFT_CTX_OUTPUT_STATELESS) != 0 }
        set {
            var flags = nft_ctx_output_get_flags(context)
            if newValue {
                flags |= UInt32(NFT_CTX_OUTPUT_STATELESS)
            } else {
                flags &= ~UInt32(NFT_CTX_OUTPUT_STATELESS)
            }
            nft_ctx_output_set_flags(context, flags)
        }
    }

    /// Listings without set elements: the structure of a table, however large its sets.
    public var terse: Bool {
        get { nft_ctx_output_get_flags(context) & UInt32(NFT_CTX_OUTPUT_TERSE) != 0 }
        set {
            var flags = nft_ctx_output_get_flags(context)
            if newValue { flags |= UInt32(NFT_CTX_OUTPUT_TERSE) } else { flags &= ~UInt32(NFT_CTX_OUTPUT_TERSE) }
            nft_ctx_output_set_flags(context, flags)
        }
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
