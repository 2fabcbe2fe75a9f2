# cart_bcell_sle individual fits in R: deSolve::lsoda with an R right-hand side (rtol 1e-8)
# + minpack.lm::nls.lm, the objective of ctkinetics' fit(): -2LL with proportional error
# (additive on ln), one SD per analyte, BLQ M1 (BLQ samples dropped), as pseudo-residuals
# (r1 = (ln y - ln f)/s, r2 = sqrt(2 ln s - 2 ln s_min + 1)). Estimated on ln: fE, kexp,
# kfade, dM, Bbase, kkill and the three SDs; every other parameter at its model-file default;
# start and bounds as the model file, SD start 0.5 in [1e-2, 20].
# Called by benchmarks/bench_fit.py --ode:  Rscript fit_cart_bcell.R DATA.csv OUT.csv
# DATA.csv: subject, kind (qpcr/flow/bcell), time, y, dose. OUT.csv: subject, ofv, iterations,
# seconds (that subject's fit), cpu_seconds, estimates.
suppressMessages({library(minpack.lm); library(deSolve)})
args <- commandArgs(trailingOnly = TRUE)
d <- read.csv(args[1])
fixed <- c(h = 1.0, B50 = 0.05, kEM = 0.05, kEX = 0.05, dE = 0.12, dX = 0.3, kout = 0.02,
           EC50 = 5.0, qpcr_per_cell = 100.0)
est <- c("fE", "kexp", "kfade", "dM", "Bbase", "kkill")
start <- log(c(fE = 0.003, kexp = 2.0, kfade = 0.25, dM = 0.028, Bbase = 200, kkill = 30,
               s_qpcr = 0.5, s_flow = 0.5, s_bcell = 0.5))
lower <- log(c(1e-6, 0.01, 0.001, 1e-5, 1.0, 0.01, 1e-2, 1e-2, 1e-2))
upper <- log(c(1.0, 20, 5, 1.0, 2000, 1000, 20, 20, 20))
floor_ <- 2 * log(1e-2)
Vblood <- 5.0e6
hill <- function(x, n, x50) ifelse(x <= 0, 0, 1 / (1 + (x50 / x)^n))
rhs <- function(t, s, p) {
  with(as.list(c(s, p)), {
    kin <- Bbase * kout
    dEdt <- kexp * exp(-kfade * t) * hill(B, h, B50) * E - (kEM + kEX + dE) * E
    dMdt <- kEM * E - dM * M
    dXdt <- kEX * E - dX * X
    dBdt <- kin - kout * B - kkill * (E + M) / (EC50 + E + M) * B
    list(c(dEdt, dMdt, dXdt, dBdt))
  })
}
predict_one <- function(lp, sd) {
  p <- c(exp(lp[1:6]), fixed)
  names(p)[1:6] <- est
  times <- sort(unique(c(0, sd$time)))
  y0 <- c(E = p[["fE"]] * sd$dose[1] / Vblood, M = 0, X = 0, B = p[["Bbase"]])
  out <- lsoda(y0, times, rhs, p, rtol = 1e-8, atol = 1e-12)
  i <- match(sd$time, out[, "time"])
  cells <- out[i, "E"] + out[i, "M"] + out[i, "X"]
  ifelse(sd$kind == "qpcr", p[["qpcr_per_cell"]] * cells,
         ifelse(sd$kind == "flow", cells, out[i, "B"]))
}
sig_of <- function(lp, kind) exp(ifelse(kind == "qpcr", lp[7], ifelse(kind == "flow", lp[8], lp[9])))
resid <- function(lp, sd) {
  f <- predict_one(lp, sd)
  s <- sig_of(lp, sd$kind)
  r <- c((log(sd$y) - log(pmax(f, 1e-300))) / s, sqrt(pmax(2 * log(s) - floor_ + 1, 0)))
  r[!is.finite(r)] <- 1e6
  r
}
m2ll <- function(lp, sd) {
  f <- predict_one(lp, sd); s <- sig_of(lp, sd$kind)
  sum(((log(sd$y) - log(f)) / s)^2 + log(2 * pi) + 2 * log(s) + 2 * log(sd$y))
}
subjects <- unique(d$subject)
rows <- lapply(subjects, function(s) {
  sd <- d[d$subject == s, ]
  t0 <- proc.time()
  f <- nls.lm(par = start, lower = lower, upper = upper, fn = resid, sd = sd,
              control = nls.lm.control(maxiter = 1000))
  dt <- proc.time() - t0
  est_v <- exp(f$par); names(est_v) <- names(start)
  data.frame(subject = s, ofv = m2ll(f$par, sd), iterations = f$niter,
             seconds = dt[["elapsed"]], cpu_seconds = dt[["user.self"]] + dt[["sys.self"]],
             t(est_v))
})
write.csv(do.call(rbind, rows), args[2], row.names = FALSE)
