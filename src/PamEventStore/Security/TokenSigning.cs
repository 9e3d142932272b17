using System.Security.Cryptography;
using System.Text;
using Microsoft.IdentityModel.Tokens;
using PamEventStore.Storage;

namespace PamEventStore.Security;

/// <summary>Token settings (configuration section <c>Auth</c>).</summary>
public sealed class AuthOptions
{
    public const string Section = "Auth";

    public string Issuer { get; set; } = "pam-event-store";

    public string Audience { get; set; } = "pam-event-store";

    /// <summary>
    /// HS256 key: base64 of at least 32 bytes. For development and for platforms that mint their own
    /// tokens with a shared secret. Leave empty to use <see cref="Authority"/>: setting both refuses to start.
    /// </summary>
    public string? SigningKey { get; set; }

    /// <summary>An OIDC authority whose published keys sign the tokens (production).</summary>
    public string? Authority { get; set; }

    public bool RequireHttpsMetadata { get; set; } = true;
}

/// <summary>
/// The HS256 key tokens are signed with when no OIDC authority is configured. Outside Production a
/// missing key is generated once under the local data directory, so the service and the
/// <c>token</c> command agree without any setup.
/// </summary>
public static class TokenSigning
{
    public const int MinimumKeyBytes = 32;

    public static SymmetricSecurityKey? Resolve(AuthOptions options, IHostEnvironment environment, LocalDataDirectory dataDirectory)
    {
        // Either the issuer's keys or the shared secret, never both: a shared secret next to an issuer
        // would let anyone who holds it mint tokens the issuer never signed.
        if (!string.IsNullOrWhiteSpace(options.SigningKey) && !string.IsNullOrWhiteSpace(options.Authority))
        {
            throw new StartRefusedException(
                "Auth:SigningKey and Auth:Authority are both set. Tokens are checked against one of them: " +
                "keep Auth:Authority (the OIDC issuer) and remove Auth:SigningKey, or the other way round.");
        }

        if (!string.IsNullOrWhiteSpace(options.SigningKey)) return FromBase64(options.SigningKey, "Auth:SigningKey");
        if (!string.IsNullOrWhiteSpace(options.Authority))
        {
            // Refused here rather than by the token handler on the first request, where every request,
            // /health too, would fail with a 500 while the node looked up.
            if (!Uri.TryCreate(options.Authority, UriKind.Absolute, out var authority) || authority.Scheme is not ("https" or "http"))
                throw new StartRefusedException($"Auth:Authority '{options.Authority}' is not an absolute http(s) URL of the OIDC issuer.");
            if (authority.Scheme == "http" && options.RequireHttpsMetadata)
                throw new StartRefusedException($"Auth:Authority '{options.Authority}' is not https; its signing keys would be fetched unprotected. Use https, or set Auth:RequireHttpsMetadata=false for an issuer on a trusted network.");
            return null;
        }

        if (environment.IsProduction())
        {
            throw new StartRefusedException(
                "No token validation is configured. Production needs Auth:Authority (an OIDC issuer) or Auth:SigningKey " +
                "(base64 of at least 32 random bytes, e.g. `openssl rand -base64 32`).");
        }

        var stored = dataDirectory.ReadOrCreateSecret("token-signing.key", () => Convert.ToBase64String(RandomNumberGenerator.GetBytes(MinimumKeyBytes)));
        return FromBase64(stored.Trim(), dataDirectory.PathOf("token-signing.key"));
    }

    private static SymmetricSecurityKey FromBase64(string value, string source)
    {
        byte[] key;
        try
        {
            key = Convert.FromBase64String(value);
        }
        catch (FormatException)
        {
            // A passphrase is tolerated so long as it is long enough; its bytes are the key.
            key = Encoding.UTF8.GetBytes(value);
        }

        if (key.Length < MinimumKeyBytes)
            throw new StartRefusedException($"{source} must hold at least {MinimumKeyBytes} bytes of key material; it has {key.Length}.");

        return new SymmetricSecurityKey(key) { KeyId = Convert.ToHexString(SHA256.HashData(key))[..16] };
    }
}
