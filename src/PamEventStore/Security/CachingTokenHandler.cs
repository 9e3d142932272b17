using Microsoft.Extensions.Caching.Memory;
using Microsoft.IdentityModel.JsonWebTokens;
using Microsoft.IdentityModel.Tokens;

namespace PamEventStore.Security;

/// <summary>
/// A gateway sends the same token with every upload of every session. Validating it once and
/// reusing the result until it expires (at most <see cref="Reuse"/>) spares a signature check and a
/// JSON parse per request. The cache is keyed by the exact token text and never outlives the token's
/// own expiry; a signing key withdrawn from the issuer stops being trusted within <see cref="Reuse"/>.
/// </summary>
public sealed class CachingTokenHandler : JsonWebTokenHandler, IDisposable
{
    public static readonly TimeSpan Reuse = TimeSpan.FromMinutes(5);

    private readonly MemoryCache _validated = new(new MemoryCacheOptions { SizeLimit = 10_000 });

    public override async Task<TokenValidationResult> ValidateTokenAsync(string token, TokenValidationParameters validationParameters)
    {
        if (_validated.TryGetValue(token, out TokenValidationResult? known) && known!.SecurityToken.ValidTo > DateTime.UtcNow)
        {
            return Copy(known);
        }

        var result = await base.ValidateTokenAsync(token, validationParameters);

        // RFC 7515 4.1.11: a token whose header names extensions as critical ("crit", such as RFC 7797's
        // unencoded payloads) must be refused by a recipient that does not understand them: this one understands none.
        if (result is { IsValid: true, SecurityToken: JsonWebToken jwt } && jwt.TryGetHeaderValue<object>("crit", out _))
        {
            return new TokenValidationResult { IsValid = false, Exception = new SecurityTokenException("The token's header names critical extensions ('crit'), which this service does not understand.") };
        }

        if (result.IsValid)
        {
            var expires = new DateTimeOffset(DateTime.SpecifyKind(result.SecurityToken.ValidTo, DateTimeKind.Utc));
            var entry = new MemoryCacheEntryOptions { Size = 1, AbsoluteExpiration = Min(expires, DateTimeOffset.UtcNow + Reuse) };
            _validated.Set(token, Copy(result), entry);
        }

        return result;
    }

    /// <summary>A valid result with an identity of its own: each request's handlers may add claims to theirs.</summary>
    private static TokenValidationResult Copy(TokenValidationResult valid) => new()
    {
        IsValid = true,
        ClaimsIdentity = valid.ClaimsIdentity.Clone(),
        SecurityToken = valid.SecurityToken,
        Issuer = valid.Issuer,
        TokenType = valid.TokenType,
    };

    private static DateTimeOffset Min(DateTimeOffset a, DateTimeOffset b) => a < b ? a : b;

    public void Dispose() => _validated.Dispose();
}
