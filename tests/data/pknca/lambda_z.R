# PKNCA reference values for ctkinetics' NCA: the λz window rule, the quality (exclusion) rules
# and every parameter PKNCA shares with the registry.
#
# Run from this folder (R >= 4.2, PKNCA 0.12.1 built from source):  Rscript lambda_z.R
# Writes
#   profiles.csv          the input: R's Theoph (hours) and CAR-T-like profiles (days;
#                         conc 0 = BLQ; time 0, conc 0 = the infusion), one row per sample
#   pknca_long.csv        pk.nca() results, long: profile, subject, start, end, PPTESTCD,
#                         PPORRES, exclude (NA = kept) after PKNCA's exclusion rules
#                         exclude_nca_min.hl.adj.r.squared(0.9), exclude_nca_span.ratio()
#                         (2) and exclude_nca_max.aucinf.pext() (20 %)
#   r_squared_rule.csv    the same profiles with exclude_nca_min.hl.r.squared() (0.9) alone
#   best_falling.csv      λz by the other window rule (best adjusted R² among falling windows
#                         only, then most points), computed here with lm() window by window
# Used by tests/nca/test_nca_pknca.py and tests/nca/test_nca_registry.py; the project
# itself never needs R.
suppressMessages({library(PKNCA); library(dplyr)})

## ---- profiles --------------------------------------------------------------------------
theoph <- data.frame(profile = "theoph", subject = paste0("T", as.character(Theoph$Subject)),
                     time = Theoph$Time, conc = Theoph$conc, dose = Theoph$Dose * Theoph$Wt)

# CAR-T-like: expansion to a peak, biexponential decline, multiplicative noise, LLOQ 20 copies/ug
days <- c(1, 4, 7, 10, 14, 21, 28, 42, 56, 84, 112, 168, 252, 365)
set.seed(20240601)
sim <- do.call(rbind, lapply(1:40, function(i) {
  cmax <- 20000 * exp(rnorm(1, 0, 0.8)); tmax <- min(max(9 * exp(rnorm(1, 0, 0.3)), 3), 20)
  alpha <- 0.18 * exp(rnorm(1, 0, 0.4)); beta <- 0.004 * exp(rnorm(1, 0, 0.5))
  fb <- 0.01 * exp(rnorm(1, 0, 0.7)); sd <- c(0.25, 0.5, 0.9)[(i %% 3) + 1]
  dt <- days - tmax
  c <- ifelse(days < tmax, cmax * exp(log(2000) / tmax * dt),
              cmax * ((1 - fb) * exp(-alpha * dt) + fb * exp(-beta * dt)))
  c <- signif(c * exp(rnorm(length(days), 0, sd)), 6)
  c[c < 20] <- 0
  ns <- sample(9:14, 1)  # follow-up ends early for some
  data.frame(profile = "cart_sim", subject = sprintf("C%02d", i), time = c(0, days[1:ns]),
             conc = c(0, c[1:ns]), dose = c(1e8, 3e8, 6e8)[(i %% 3) + 1])
}))

# CAR-T-like profiles written by hand, each for one situation of the λz rules
hand <- function(subject, time, conc) data.frame(profile = "cart_hand", subject = subject,
                                                 time = c(0, time), conc = c(0, conc), dose = 3e8)
cases <- rbind(
  # exact decline: every rule keeps it (λz = ln2/7, span 77/7 = 11)
  hand("H_exact", c(1, 4, 7, 14, 21, 28, 56, 84), c(100, 3000, 9000, 9000 * 0.5^(c(7, 14, 21, 49, 77) / 7))),
  # re-expansion at the end: a rising window fits best (PKNCA: no λz)
  hand("H_rise_end", c(1, 4, 7, 10, 14, 21, 28, 56, 84, 112), c(50, 2000, 9000, 6000, 2500, 900, 400, 300, 450, 600)),
  # zig-zag decline: every window fits badly (adjusted R² well below 0.9)
  hand("H_zigzag", c(1, 4, 7, 14, 21, 28, 56, 84, 168), c(80, 3000, 9000, 3000, 800, 2500, 400, 1500, 300)),
  # slow decline over a short window: span ratio < 2 and AUC∞ mostly extrapolated
  hand("H_plateau", c(1, 4, 7, 14, 21, 28), c(100, 2000, 5000, 4800, 4500, 4300)),
  # fast decline, last sample early: good fit, but > 20 % extrapolated
  hand("H_short", c(1, 4, 7, 10, 14), c(100, 4000, 9000, 7000, 5200)),
  # noisy but falling: adjusted R² between 0.011 and 0.39 as on the hidden cohorts
  hand("H_noisy", c(1, 4, 7, 14, 21, 28, 56, 84, 112), c(60, 2500, 8000, 2000, 2600, 900, 1800, 700, 1500)),
  # flat tail: λz of the last window is 0; an earlier falling window exists
  hand("H_flat_tail", c(1, 4, 7, 14, 21, 28, 56), c(60, 2500, 8000, 3000, 800, 800, 800)),
  # trailing BLQ and a BLQ in the middle (dropped by the default BLQ rule)
  hand("H_blq", c(1, 4, 7, 14, 21, 28, 56, 84), c(60, 2500, 8000, 0, 1500, 600, 100, 0))
)
profiles <- rbind(theoph, sim, cases)
write.csv(profiles, "profiles.csv", row.names = FALSE)

## ---- PKNCA -----------------------------------------------------------------------------
params <- c("cmax", "tmax", "tlast", "clast.obs", "auclast", "aucall", "half.life", "lambda.z",
            "r.squared", "adj.r.squared", "lambda.z.n.points", "lambda.z.time.first",
            "lambda.z.time.last", "span.ratio", "clast.pred", "aucinf.obs", "aucpext.obs",
            "aucinf.pred", "aucpext.pred", "cmax.dn", "aucinf.obs.dn", "cl.obs", "vz.obs")
whole <- data.frame(start = 0, end = Inf)
for (p in params) whole[[p]] <- TRUE
aucs <- data.frame(start = c(0, 2), end = c(28, 10), aucint.last = TRUE, aucint.all = TRUE,
                   aucint.inf.obs = TRUE)
intervals <- bind_rows(whole, aucs)
intervals[is.na(intervals)] <- FALSE

run <- function(d, excl) {
  doses <- d %>% group_by(subject) %>% summarise(dose = first(dose)) %>% mutate(time = 0)
  o <- PKNCAdata(PKNCAconc(d, conc ~ time | subject), PKNCAdose(doses, dose ~ time | subject),
                 intervals = intervals, options = list(auc.method = "lin up/log down"))
  res <- suppressWarnings(suppressMessages(pk.nca(o)))
  for (f in excl) res <- exclude(res, FUN = f)
  out <- as.data.frame(res)
  out$profile <- d$profile[1]
  out
}
quality <- list(exclude_nca_min.hl.adj.r.squared(0.9), exclude_nca_span.ratio(),
                exclude_nca_max.aucinf.pext())
long <- do.call(rbind, lapply(split(profiles, profiles$profile), run, excl = quality))
long <- long[, c("profile", "subject", "start", "end", "PPTESTCD", "PPORRES", "exclude")]
long$pknca_version <- as.character(packageVersion("PKNCA"))
write.csv(long, "pknca_long.csv", row.names = FALSE, na = "NA")

r2 <- do.call(rbind, lapply(split(profiles, profiles$profile), run,
                            excl = list(exclude_nca_min.hl.r.squared())))
r2 <- r2[r2$start == 0 & is.infinite(r2$end), c("profile", "subject", "PPTESTCD", "PPORRES", "exclude")]
write.csv(r2, "r_squared_rule.csv", row.names = FALSE, na = "NA")

## ---- the best-falling rule, window by window with lm() ----------------------------------
best_falling <- function(d) {
  d <- d[d$conc > 0, ]
  tmax <- d$time[which.max(d$conc)]
  k <- d[d$time > tmax, ]
  k <- k[order(-k$time), ]
  fits <- lapply(seq_len(nrow(k))[-(1:2)], function(n) {
    w <- k[1:n, ]
    s <- summary(lm(log(conc) ~ time, data = w))
    data.frame(n = n, lambda.z = -coef(s)[2, 1], adj = s$adj.r.squared, first = min(w$time))
  })
  if (!length(fits)) return(data.frame(lambda.z = NA, adj.r.squared = NA, n.points = NA, first = NA))
  f <- do.call(rbind, fits)
  f <- f[f$lambda.z > 0, ]
  if (!nrow(f)) return(data.frame(lambda.z = NA, adj.r.squared = NA, n.points = NA, first = NA))
  f <- f[f$adj > max(f$adj) - 1e-4, ]
  f <- f[which.max(f$n), ]
  data.frame(lambda.z = f$lambda.z, adj.r.squared = f$adj, n.points = f$n, first = f$first)
}
bf <- do.call(rbind, lapply(split(profiles, paste(profiles$profile, profiles$subject)), function(d)
  cbind(data.frame(profile = d$profile[1], subject = d$subject[1]), best_falling(d))))
write.csv(bf, "best_falling.csv", row.names = FALSE, na = "NA")
