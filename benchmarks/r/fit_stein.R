# stein2019 individual fits with minpack.lm::nls.lm, the objective of ctkinetics' fit():
# -2LL with proportional error (additive on ln) and BLQ M3, written as pseudo-residuals
# (quantified: r1 = (ln y - ln f)/s, r2 = sqrt(2 ln s - 2 ln s_min + 1); censored:
# r = sqrt(-2 ln Phi((ln LLOQ - ln f)/s))), parameters on ln, bounds and start as the model
# file, sigma start 0.5 in [1e-2, 20]. Called by benchmarks/bench_fit.py:
#   Rscript fit_stein.R DATA.csv REPEATS OUT.csv
# DATA.csv: subject, time, y (value or LLOQ), cens (1 = BLQ). Prints nothing; OUT.csv gets
# per subject: subject, ofv (-2LL, all constants), iterations, seconds per fit (mean of
# REPEATS repeated fits of the whole cohort: wall clock and CPU), and the estimates.
suppressMessages(library(minpack.lm))
args <- commandArgs(trailingOnly = TRUE)
d <- read.csv(args[1])
repeats <- as.integer(args[2])
nm <- c("Cmax", "Tmax", "foldx", "alpha", "FB", "beta", "sigma")
start <- log(c(24000, 9.3, 3900, 0.16, 0.0079, 0.0032, 0.5))
lower <- log(c(1, 0.5, 1.0001, 1e-4, 1e-7, 1e-6, 1e-2))
upper <- log(c(1e8, 90, 1e9, 10, 1, 1, 20))
floor_ <- 2 * log(1e-2)
stein <- function(p, t) {
  Cmax <- p[1]; Tmax <- p[2]; foldx <- p[3]; alpha <- p[4]; FB <- p[5]; beta <- p[6]
  rho <- log(foldx) / Tmax
  tau <- pmax(t - Tmax, 0)
  ifelse(t < Tmax, Cmax / foldx * exp(rho * t),
         Cmax * ((1 - FB) * exp(-alpha * tau) + FB * exp(-beta * tau)))
}
resid <- function(lp, t, y, cens) {
  p <- exp(lp); s <- p[7]
  f <- stein(p, t)
  z <- (log(y) - log(pmax(f, 1e-300))) / s
  q <- cens == 0
  r1 <- ifelse(q, z, sqrt(pmax(-2 * pnorm(z, log.p = TRUE), 0)))
  r2 <- ifelse(q, sqrt(pmax(2 * log(s) - floor_ + 1, 0)), 0)
  r <- c(r1, r2)
  r[!is.finite(r)] <- 1e6
  r
}
m2ll <- function(lp, t, y, cens) {
  p <- exp(lp); s <- p[7]; f <- stein(p, t)
  z <- (log(y) - log(f)) / s
  q <- cens == 0
  sum(ifelse(q, z^2 + log(2 * pi) + 2 * log(s) + 2 * log(y), -2 * pnorm(z, log.p = TRUE)))
}
subjects <- unique(d$subject)
fit_one <- function(sd) {
  nls.lm(par = start, lower = lower, upper = upper, fn = resid, t = sd$time, y = sd$y,
         cens = sd$cens, control = nls.lm.control(maxiter = 1000))
}
per <- split(d, factor(d$subject, levels = subjects))
fits <- lapply(per, fit_one)  # warm-up, and the results reported
t0 <- proc.time()
for (k in seq_len(repeats)) invisible(lapply(per, fit_one))
dt <- proc.time() - t0
el <- dt[["elapsed"]] / repeats / length(subjects)
cpu <- (dt[["user.self"]] + dt[["sys.self"]]) / repeats / length(subjects)
out <- do.call(rbind, lapply(seq_along(subjects), function(i) {
  f <- fits[[i]]; sd <- per[[i]]
  est <- exp(f$par); names(est) <- nm
  data.frame(subject = subjects[i], ofv = m2ll(f$par, sd$time, sd$y, sd$cens),
             iterations = f$niter, seconds_per_fit = el, cpu_seconds_per_fit = cpu, t(est))
}))
write.csv(out, args[3], row.names = FALSE)
