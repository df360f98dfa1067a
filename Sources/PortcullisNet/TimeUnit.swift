/// The unit of a rate, as nft and the policy language spell it (`10/minute`); iptables'
/// `--limit` abbreviates it.
public enum TimeUnit: String, Sendable, Hashable, CaseIterable {
    case second
    case minute
    case hour
    case day
}
